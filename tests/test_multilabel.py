"""Multi-label classification (htc_dl.multilabel): the from-scratch loss against PyTorch's, the
threshold metrics against fastai's, bad input refused with a clear message, the app's predictions
computed once and then read from their cache, and the threshold app driven through its widgets
without a browser."""
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import htc_dl.multilabel_app as multilabel_app
from htc_dl.multilabel import (accuracy_at, binary_cross_entropy, check_columns, label_metrics,
                               split_on_is_valid, threshold_sweep)
from htc_dl.multilabel_app import app_predictions, threshold_app, train_head

VOCAB = ["bicycle", "car", "cat"]
PROBS = torch.tensor([[0.9, 0.3, 0.6], [0.1, 0.7, 0.4], [0.8, 0.2, 0.1], [0.3, 0.9, 0.95]])
TRUTH = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 1, 1]], dtype=torch.float32)


def images(n):
    return [Image.new("RGB", (40, 30), (20 * i, 100, 200)) for i in range(n)]


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """The app's predictions on a few offline PASCAL images, computed into a fresh cache folder,
    with the time it took."""
    from htc_dl.data import pascal
    cache = tmp_path_factory.mktemp("models")
    start = time.perf_counter()
    found = app_predictions(pascal(), max_train=60, max_valid=12, cache_dir=cache)
    return found, cache, time.perf_counter() - start


# ---------------------------------------------------------------- loss and metrics

def test_binary_cross_entropy_from_scratch_equals_pytorchs_on_hard_soft_and_extreme_targets():
    torch.manual_seed(0)
    logits = torch.randn(32, 8) * 4
    for targets in ((torch.rand(32, 8) > 0.6).float(), torch.rand(32, 8)):
        assert binary_cross_entropy(logits, targets).item() == pytest.approx(
            F.binary_cross_entropy_with_logits(logits, targets).item(), abs=1e-6)
        assert binary_cross_entropy(logits, targets).item() == pytest.approx(
            torch.nn.BCEWithLogitsLoss()(logits, targets).item(), abs=1e-6)
    extreme = torch.tensor([[60., -60.]])
    # finite, not inf
    assert binary_cross_entropy(extreme, torch.tensor([[0., 1.]])).item() == pytest.approx(
        60.0, abs=1e-4)


def test_binary_cross_entropy_gradient_equals_pytorchs():
    logits = torch.randn(4, 5, requires_grad=True); targets = (torch.rand(4, 5) > 0.5).float()
    binary_cross_entropy(logits, targets).backward(); ours = logits.grad.clone(); logits.grad = None
    F.binary_cross_entropy_with_logits(logits, targets).backward()
    torch.testing.assert_close(ours, logits.grad)


def test_accuracy_at_equals_fastais_accuracy_multi_at_every_threshold():
    from fastai.metrics import accuracy_multi
    for t in (0.05, 0.2, 0.5, 0.65, 0.95):
        assert accuracy_at(PROBS, TRUTH, t) == pytest.approx(
            accuracy_multi(PROBS, TRUTH, thresh=t, sigmoid=False).item())
    assert threshold_sweep(PROBS, TRUTH, [0.5, 0.65]) == pytest.approx([10/12, 11/12])


def test_label_metrics_counts_precision_and_recall_per_label_and_leaves_zero_over_zero_undefined():
    m = label_metrics(PROBS, TRUTH, 0.5, VOCAB)
    assert list(m.index) == VOCAB
    assert m.loc["bicycle", ["precision", "recall"]].tolist() == [1.0, 1.0]
    # predicted for 2 images, one of them wrong
    assert m.loc["cat", "recall"] == 0.5 and m.loc["cat", "precision"] == 0.5
    assert m.loc["cat", "predicted"] == 2 and m.loc["cat", "actual"] == 2
    # nothing predicted
    assert np.isnan(label_metrics(PROBS, TRUTH, 0.99, VOCAB).loc["car", "precision"])


def test_label_metrics_with_a_vocab_of_the_wrong_length_says_so():
    with pytest.raises(ValueError, match="do not match"):
        label_metrics(PROBS, TRUTH, 0.5, VOCAB[:2])


def test_splitter_on_is_valid_names_the_missing_column_and_how_to_fix_it():
    import pandas as pd
    df = pd.DataFrame(dict(fname=["a", "b", "c"], labels=["x", "y", "x y"],
                           is_valid=[True, False, False]))
    assert split_on_is_valid(df) == ([1, 2], [0])
    with pytest.raises(ValueError, match=r"missing is_valid.*Rename"):
        split_on_is_valid(df.drop(columns="is_valid"))
    with pytest.raises(ValueError, match="missing labels"):
        check_columns(df.drop(columns="labels"), ["fname", "labels"])


def test_train_head_learns_separable_features_and_is_reproducible():
    torch.manual_seed(0)
    targets = (torch.rand(200, 3) > 0.5).float()
    features = torch.cat([targets * 2 - 1, torch.randn(200, 5) * 0.1], 1)
    head = train_head(features, targets, steps=200)
    assert accuracy_at(torch.sigmoid(head(features)), targets, 0.5) == 1.0
    torch.testing.assert_close(head.weight, train_head(features, targets, steps=200).weight)


# ---------------------------------------------------------------- the app's predictions

def test_app_predictions_are_probabilities_for_each_validation_image_and_label(predictions):
    (probs, targets, files, vocab), _, _ = predictions
    assert probs.shape == targets.shape == (12, len(vocab)) and len(files) == 12
    assert 0 <= probs.min() and probs.max() <= 1
    assert set(np.unique(targets).tolist()) <= {0.0, 1.0} and (targets.sum(1) >= 1).all()
    assert all(Path(f).exists() for f in files) and vocab == sorted(vocab)
    # a frozen ImageNet body and 60 training images already do well
    assert accuracy_at(probs, targets, 0.5) > 0.8


def test_app_predictions_second_launch_reads_the_cache_fast_and_leaves_no_temporary_files(
        predictions):
    from htc_dl.data import pascal
    (probs, *_), cache, first = predictions
    saved = list(cache.iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".safetensors"
    start = time.perf_counter()
    again, *_ = app_predictions(pascal(), max_train=60, max_valid=12, cache_dir=cache)
    assert time.perf_counter() - start < max(1.0, first / 3)
    torch.testing.assert_close(again, probs)
    assert list(cache.iterdir()) == saved


def test_app_predictions_cache_lives_in_models_root_which_htc_dl_models_moves(
        predictions, tmp_path, monkeypatch):
    """Without `cache_dir`, the cache is read from `htc_dl.data.models_root()`, the one folder of
    every app's models."""
    import shutil
    from htc_dl.data import MODELS_ENV, models_root, pascal
    (probs, *_), cache, first = predictions
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert models_root() == tmp_path
    shutil.copy(next(cache.iterdir()), tmp_path)
    start = time.perf_counter()
    again, *_ = app_predictions(pascal(), max_train=60, max_valid=12)
    # read from the moved folder, not computed again
    assert time.perf_counter() - start < max(1.0, first / 3)
    torch.testing.assert_close(again, probs)
    assert [p.name for p in tmp_path.iterdir()] == [p.name for p in cache.iterdir()]


def test_app_predictions_for_a_folder_without_train_csv_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.csv"):
        app_predictions(tmp_path, cache_dir=tmp_path)


# ---------------------------------------------------------------- the threshold app

def test_threshold_slider_updates_summary_table_and_captions():
    app = threshold_app(PROBS, TRUTH, images(4), VOCAB, thresh=0.5)
    assert "accuracy_multi at 0.50: 0.833" in app.summary.value
    app.slider.value = 0.65
    assert "accuracy_multi at 0.65: 0.917" in app.summary.value and app.message.value == ""
    # image 1: cat missed at 0.65
    assert "✗" not in app.captions[1].value and "<s>cat</s>" in app.captions[1].value
    assert (app.cells[1].layout.border.endswith("#b3261e")
            and app.cells[0].layout.border.endswith("transparent"))
    assert app.table.value.count("<tr>") == 1 + len(VOCAB)
    # the apps' shared table, one row per label
    assert "<td style='padding:2px 8px'>cat</td>" in app.table.value


def test_wrongly_predicted_label_is_marked_with_a_cross():
    app = threshold_app(PROBS, TRUTH, images(4), VOCAB, thresh=0.5)
    assert "✗ cat" in app.captions[0].value and "bicycle" in app.captions[0].value


def test_handler_error_shows_a_message_and_the_app_stays_usable(monkeypatch):
    app = threshold_app(PROBS, TRUTH, images(4), VOCAB, thresh=0.5)
    def broken(*args, **kwargs): raise RuntimeError("table broke")
    monkeypatch.setattr(multilabel_app, "label_metrics", broken)
    app.slider.value = 0.3                      # must not raise
    assert ("Something went wrong (RuntimeError: table broke)" in app.message.value
            and "#b3261e" in app.message.value)
    monkeypatch.undo()
    app.slider.value = 0.6
    assert app.message.value == "" and "accuracy_multi at 0.60" in app.summary.value


@pytest.mark.parametrize("kwargs, match", [
    (dict(probs=PROBS * 3), "apply the sigmoid"),
    (dict(vocab=VOCAB[:2]), "vocab has 2 labels"),
    (dict(images=images(3)), "one image per row"),
    (dict(targets=TRUTH[:2]), "must both be"),
])
def test_threshold_app_refuses_inconsistent_inputs_with_a_clear_message(kwargs, match):
    args = dict(probs=PROBS, targets=TRUTH, images=images(4), vocab=VOCAB) | kwargs
    with pytest.raises(ValueError, match=match):
        threshold_app(**args)


def test_app_notebook_only_calls_the_app_function():
    import json
    nb = json.loads((Path(__file__).resolve().parent.parent/"nbs"/"apps"
                     /"multilabel_threshold.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "app_predictions()" in code and "threshold_app(probs, targets, files, vocab)" in code
    assert "def " not in code


def test_body_features_keep_the_order_of_the_batches_and_refuse_an_empty_loader():
    from htc_dl.multilabel import body_features
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
    batches = [(torch.randn(2, 3, 8, 8), torch.full((2, 5), float(i))) for i in range(3)]
    feats, targs = body_features(body, batches, after=torch.nn.Flatten())
    assert feats.shape == (6, 4) and targs[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    with torch.no_grad(): torch.testing.assert_close(feats[2:4], body(batches[1][0]).flatten(1))
    with pytest.raises(ValueError, match="no batches"):
        body_features(body, [])


def test_the_voila_app_reads_its_cache_and_draws_without_importing_pytorch(predictions):
    """The threshold page must be up in seconds: on a cache hit it reads the probabilities with
    NumPy and never imports torch."""
    import json, subprocess, sys
    (probs, *_), cache, _ = predictions
    code = f"""
import sys, json
from htc_dl.data import pascal
from htc_dl.multilabel_app import app_predictions, threshold_app
probs, targets, files, vocab = app_predictions(pascal(), max_train=60, max_valid=12, \
cache_dir={str(cache)!r})
app = threshold_app(probs, targets, files, vocab)
print(json.dumps(dict(torch="torch" in sys.modules, kind=type(probs).__name__, \
summary=app.summary.value, cells=len(app.cells))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["torch"] is False and found["kind"] == "ndarray" and found["cells"] == 12
    targets = predictions[0][1]
    # the same numbers as in this process
    assert f"accuracy_multi at 0.50: {accuracy_at(probs, targets, 0.5):.3f}" in found["summary"]
