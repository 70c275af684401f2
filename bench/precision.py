"""Time per epoch in fp32, fastai's to_fp16() and bf16, on lesson 5's training (a resnet18, no
pretraining, on the pets images), measured in one run so the ratios compare like with like. On CUDA:
also peak GPU memory and CPU vs GPU.

Run alone: `.venv/bin/python bench/precision.py [--json out.json]`. Images are decoded once into
tensors, so an epoch measures the model's arithmetic, not JPEG decoding."""
import argparse, json, re, statistics, sys, time, warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def pets_tensors(size=128, limit=None):
    """The pets images as one float tensor (n, 3, size, size) normalised with ImageNet stats, labels
    from file names."""
    from htc_dl.data import pets
    path = pets(size="small")
    files = sorted(Path(path, "images").glob("*.jpg"))[:limit]
    breeds = sorted({re.match(r"^(.*)_\d+\.jpg$", f.name).group(1) for f in files})
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size))) for f in files])
    x = torch.tensor(x).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor([0.485, 0.456, 0.406])[:, None, None],
                 torch.tensor([0.229, 0.224, 0.225])[:, None, None])
    y = torch.tensor([breeds.index(re.match(r"^(.*)_\d+\.jpg$", f.name).group(1)) for f in files])
    return (x - mean) / std, y, breeds, str(path)


def make_learner(x, y, n_classes, device, bs=64, seed=0):
    """A fastai Learner: torchvision resnet18 (random start) on tensors, 80/20 split, Adam,
    cross-entropy."""
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    import fastai.callback.fp16  # noqa: F401  (adds Learner.to_fp16 / to_bf16)
    from fastai.metrics import error_rate
    from torchvision.models import resnet18
    torch.manual_seed(seed)
    n_valid = len(x) // 5
    idx = torch.randperm(len(x))
    train, valid = idx[n_valid:], idx[:n_valid]
    dl_train = DataLoader(list(zip(x[train], y[train])), bs=bs, shuffle=True, drop_last=True,
                          device=device, num_workers=0)
    dl_valid = DataLoader(list(zip(x[valid], y[valid])), bs=bs * 2, device=device, num_workers=0)
    model = resnet18(num_classes=n_classes)
    return Learner(DataLoaders(dl_train, dl_valid, device=device), model,
                   loss_func=torch.nn.CrossEntropyLoss(), metrics=error_rate)


def cpu_bf16_callback():
    """fastai's to_bf16() autocasts on 'cuda' only; this callback autocasts the forward pass and
    loss on the CPU."""
    from fastai.callback.core import Callback
    class CPUBFloat16(Callback):
        order = 10
        def before_batch(self):
            self.ctx = torch.autocast("cpu", dtype=torch.bfloat16); self.ctx.__enter__()
        def after_loss(self): self.ctx.__exit__(None, None, None)
        def after_cancel_batch(self): self.ctx.__exit__(None, None, None)
    return CPUBFloat16()


def _sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def one_epoch(learn, device):
    """Wall and CPU seconds (all threads) for one training epoch (`fit(1)`, no progress bar or
    logging), and its warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _sync(device); t, c = time.perf_counter(), time.process_time()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        _sync(device)
    return time.perf_counter() - t, time.process_time() - c, {
        " ".join(str(w.message).split())[:150] for w in caught
        if "jit.script" not in str(w.message)}


def measure(device, x, y, n_classes, epochs, modes, deadline, rows, write):
    """Each mode's learner trained in rounds, one epoch per mode per round, so a change in the
    machine's load hits every mode alike; round 0 warms up. Into `rows['<device> <mode>']`: median
    s/epoch of the measured rounds, the epoch times, the warm-up, final valid loss, warnings, peak
    GPU memory. Stops before a round that would end past `deadline`; `write()` after each round, so
    a run cut short still leaves what it measured."""
    learners = {}
    for mode in modes:
        learn = learners[mode] = make_learner(x, y, n_classes, device)
        if mode == "to_fp16()": learn.to_fp16()
        elif mode == "bf16 (to_bf16)": learn.to_bf16()
        elif mode == "bf16 autocast (CPU)": learn.add_cb(cpu_bf16_callback())
        rows[f"{device.type} {mode}"] = dict(mode=mode, device=str(device), epoch_times=[],
                                             warnings=set(), peak_gpu=0)
    last_round = None
    for r in range(epochs + 1):
        if last_round and time.perf_counter() + 1.2 * last_round > deadline: break
        t_round = time.perf_counter()
        for mode, learn in learners.items():
            row = rows[f"{device.type} {mode}"]
            if device.type == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
            seconds, cpu_seconds, warns = one_epoch(learn, device)
            row["warnings"] |= warns
            if device.type == "cuda":
                row["peak_gpu"] = max(row["peak_gpu"], torch.cuda.max_memory_allocated())
            if r == 0: row["warmup_s"], row["warmup_cpu_s"] = seconds, cpu_seconds
            else:
                row["epoch_times"].append(seconds)
                row.setdefault("cpu_times", []).append(cpu_seconds)
        last_round = time.perf_counter() - t_round
        for mode, learn in learners.items():
            row = rows[f"{device.type} {mode}"]
            # only the warm-up fitted: better than nothing, and said so
            times = row["epoch_times"] or [row["warmup_s"]]
            row.update(epoch_s=statistics.median(times), warmup_only=not row["epoch_times"],
                       cpu_epoch_s=statistics.median(row.get("cpu_times") or [row["warmup_cpu_s"]]))
            print(f"round {r}: {mode:22} on {device}: {row['epoch_s']:.2f} s/epoch", flush=True)
        write()
    for mode, learn in learners.items():
        row = rows[f"{device.type} {mode}"]
        with learn.no_bar(): row["valid_loss"] = float(learn.validate()[0])
        row["warnings"] = sorted(row["warnings"])
        peak = row.pop("peak_gpu")
        if device.type == "cuda": row["peak_gpu_mib"] = round(peak / 2**20)
    write()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--json"); ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--size", type=int,
                    help="image side in pixels (default 64 on CPU, 224 with CUDA)")
    ap.add_argument("--budget", type=float, default=600,
                    help="seconds; modes that cannot fit are reported as not run")
    args = ap.parse_args(argv)
    deadline = time.perf_counter() + args.budget
    cuda = torch.cuda.is_available()
    size = args.size or (224 if cuda else 64)
    x, y, breeds, source = pets_tensors(size)
    res = dict(task=f"resnet18 (random start) on {len(x)} pets images ({len(breeds)} breeds) at "
                    f"{size}px, 80/20 split, bs 64, "
                    f"fastai Learner.fit(1), images pre-decoded into tensors",
               data=source, cuda=cuda, torch_threads=torch.get_num_threads(), rows={})
    def write():
        rows = res["rows"]
        fp32 = next((v["epoch_s"] for k, v in rows.items()
                     if k.endswith("fp32") and "epoch_s" in v), None)
        fp32_cpu = next((v["cpu_epoch_s"] for k, v in rows.items()
                         if k.endswith("fp32") and "cpu_epoch_s" in v), None)
        for v in rows.values():
            if fp32 and "epoch_s" in v: v["vs_fp32"] = v["epoch_s"] / fp32
            if fp32_cpu and "cpu_epoch_s" in v: v["cpu_vs_fp32"] = v["cpu_epoch_s"] / fp32_cpu
        if "cuda fp32" in rows and "epoch_s" in rows.get("cpu fp32", {}):
            res["cpu_over_gpu_fp32"] = rows["cpu fp32"]["epoch_s"] / rows["cuda fp32"]["epoch_s"]
        if args.json: Path(args.json).write_text(json.dumps(res, indent=1, default=sorted))
    if cuda:
        res["gpu_name"] = torch.cuda.get_device_name(0)
        modes = ["fp32", "to_fp16()"] + (["bf16 (to_bf16)"]
                                         if torch.cuda.is_bf16_supported() else [])
        cpu_reserve = 0.3 * args.budget   # the CPU epoch for the CPU/GPU ratio comes last
        measure(torch.device("cuda"), x, y, len(breeds), args.epochs, modes, deadline - cpu_reserve,
                res["rows"], write)
        measure(torch.device("cpu"), x, y, len(breeds), 1, ["fp32"], deadline, res["rows"], write)
    else:
        modes = ["fp32", "to_fp16()", "bf16 autocast (CPU)"]
        measure(torch.device("cpu"), x, y, len(breeds), args.epochs, modes, deadline, res["rows"],
                write)
    write()
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
