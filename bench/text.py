"""Lesson 6g (text), measured in a fresh interpreter in small mode on the offline reviews \
(real clothing reviews, CC0,
1-2 stars negative and 4-5 positive): validation accuracy of the four methods (bag of words, LSTM
from scratch, LSTM on GloVe, ULMFiT with a small AWD-LSTM whose embedding starts from GloVe) at
100, 300, 1,000 and all training labels, the language model's fine-tuning time (wall and CPU, one
thread), and the peak resident memory of the whole process.

Run alone: `.venv/bin/python bench/text.py [--json out.json]`; `run()` returns the Markdown
section."""
import os, resource, sys, time

from fresh_process import MEMORY_LIMIT_MB, ROOT, goal, main, section

STEPS, LM_EPOCHS, N_UNSUP = 60, 3, None   # as the lesson in small mode


def measure():
    "Everything, in this process (call it in a fresh one: peak memory is this process's)."
    sys.path.insert(0, str(ROOT))
    import tempfile
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from fastai.text.all import (AWD_LSTM, ColReader, DataBlock, RandomSplitter, TextBlock,
                                 accuracy, awd_lstm_clas_config, awd_lstm_lm_config,
                                 language_model_learner, set_seed)
    import pandas as pd
    from htc_dl.data import review_texts, reviews
    from htc_dl.text import glove_matrix, label_budget_experiment, label_budgets
    set_seed(42)
    labelled, unlabelled = review_texts(reviews(source="offline", size="small"))
    texts = pd.concat([labelled.text, unlabelled[:N_UNSUP]]).to_frame("text")
    dls_lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, n_workers=0),
                       get_x=ColReader("text"),
                       splitter=RandomSplitter(0.1, seed=42)).dataloaders(texts, bs=64, seq_len=72)
    small = {"emb_sz": 50, "n_hid": 128, "n_layers": 2}
    out = dict(data=f"{int((~labelled.is_valid).sum()):,} training / "
                    f"{int(labelled.is_valid.sum()):,} validation "
                    f"labelled reviews, {len(unlabelled):,} unlabelled (offline, small)")
    models = Path(tempfile.mkdtemp())
    learn = language_model_learner(dls_lm, AWD_LSTM, config={**awd_lstm_lm_config, **small},
                                   pretrained=False, drop_mult=0.3, metrics=accuracy, path=models,
                                   model_dir=".")
    learn.model[0].encoder.weight.data.copy_(glove_matrix(dls_lm.vocab)[0])
    t, c = time.perf_counter(), time.process_time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(LM_EPOCHS, 2e-2)
    out["lm_s"], out["lm_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["lm_accuracy"], out["lm_texts"] = float(learn.validate()[1]), len(texts)
    learn.save_encoder("encoder")
    budgets = label_budgets(int((~labelled.is_valid).sum()))
    t, c = time.perf_counter(), time.process_time()
    table = label_budget_experiment(labelled, dls_lm.vocab, models/"encoder.pth",
                                    {**awd_lstm_clas_config, **small}, budgets, steps=STEPS)
    out["experiment_s"], out["experiment_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["table"] = {str(n): row.to_dict() for n, row in table.iterrows()}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_average"] = os.getloadavg()[0]
    return out


def _gaps(m):
    "ULMFiT minus bag of words, in points, per budget."
    return {n: 100 * (row["ULMFiT"] - row["bag of words"]) for n, row in m["table"].items()}


def render(m):
    "The Markdown section for bench/RESULTS.md."
    methods = list(next(iter(m["table"].values())))
    head = ("| training labels | " + " | ".join(methods) + " | ULMFiT - bag of words |\n"
            + "|---" * (len(methods) + 2) + "|\n")
    rows = "".join(f"| {int(n):,} | " + " | ".join(f"{row[k]:.1%}" for k in methods)
                   + f" | {_gaps(m)[n]:+.1f} points |\n"
                   for n, row in m["table"].items())
    beats = all(g > 0 for g in _gaps(m).values())
    note = ("ULMFiT beats the bag of words at every budget." if beats else
            "ULMFiT does **not** beat the bag of words at every budget (last column). "
            "Why: on 2 CPU cores in small mode its language model is a 2-layer AWD-LSTM "
            "(50-wide GloVe embedding, 128 hidden units) fine-tuned for "
            f"{LM_EPOCHS} epochs on {m['lm_texts']:,} reviews, with no WikiText-103 pretraining "
            "(not downloadable offline), while TF-IDF on words and word pairs is strong for "
            "sentiment, which sits in a few words.")
    return ("## Text: the label-budget experiment (lesson 6g, small mode, offline)\n\n"
            f"{m['data']}; 1-minute load average "
            f"{m['load_average']:.1f} on {os.cpu_count()} cores while measuring.\n\n"
            f"{head}{rows}\n{note}\n\n"
            f"Language model: {LM_EPOCHS} epochs in {m['lm_s']:.0f} s wall, "
            f"{m['lm_cpu_s']:.0f} s CPU (one thread), "
            f"next-token accuracy {m['lm_accuracy']:.1%}; the 16 classifiers: "
            f"{m['experiment_s']:.0f} s wall, "
            f"{m['experiment_cpu_s']:.0f} s CPU, {STEPS} optimiser steps each. "
            f"Peak resident memory {m['peak_rss_mb']:.0f} MB "
            f"({'within' if m['peak_rss_mb'] <= MEMORY_LIMIT_MB else '**over**'} 1.5 GB).\n")


def goals(m):
    "This section's rows of the goals table."
    gaps = _gaps(m)
    return [goal("ULMFiT beats the bag of words at every label budget (offline reviews)",
                 "> 0 points at each", ", ".join(f"{int(n):,}: {g:+.1f}" for n, g in gaps.items()),
                 all(g > 0 for g in gaps.values()))]


def run(timeout=900):
    "Measure in a fresh interpreter (small mode, offline data): the section and its goals."
    return section(__file__, "Text (lesson 6g)", render, timeout, goals)


if __name__ == "__main__":
    main(__file__, __doc__, measure, render)
