"""Vision beyond classification (lesson 06f, htc_dl.vision_plus): a U-Net's mean IoU on \
CamVid-tiny's layout, time
and error of progressive resizing against a fixed size, and error rates of a pretrained body fed
RGB, RGB + infrared, or red + infrared tiles. The same recipes as the lesson, measured in one
process.

Run alone: `.venv/bin/python bench/vision.py [--json out.json]` (HTC_DL_SMALL picks the size as in
the lessons). CPU seconds are `time.process_time()` of this process (all threads); wall seconds
depend on the machine's load."""
import argparse, json, os, time, warnings

import numpy as np
import torch


def _timed(fit):
    "Run `fit()`; return (wall seconds, CPU seconds)."
    t, c = time.perf_counter(), time.process_time()
    fit()
    return time.perf_counter() - t, time.process_time() - c


def segmentation(epochs, lr=3e-3, bs=4):
    """Fixed size vs progressive resizing (half the epochs at half size), U-Net on Lite0: time,
    error without Void, mean IoU."""
    from fastai.vision.all import (SegmentationDataLoaders, Resize, get_image_files, unet_learner,
                                   foreground_acc, set_seed)
    from htc_dl.data import camvid_tiny
    from htc_dl.vision_plus import lite0_encoder, register_lite0_for_unet, per_class_iou
    path = camvid_tiny()
    codes = np.loadtxt(path/"codes.txt", dtype=str); void = list(codes).index("Void")
    def dls(size=None):
        set_seed(42, reproducible=True)
        return SegmentationDataLoaders.from_label_func(
            path, bs=bs, fnames=get_image_files(path/"images"), codes=codes, seed=42, num_workers=0,
            label_func=lambda o: path/"labels"/f"{o.stem}_P{o.suffix}",
            item_tfms=Resize(size) if size else None)
    register_lite0_for_unet()
    full = dls(); h, w = full.one_batch()[0].shape[-2:]
    def score(learn):
        preds, targets = learn.get_preds()
        ious = per_class_iou(preds, targets, codes, ignore=void)
        return (1 - float(foreground_acc(preds, targets, bkg_idx=void)),
                float(np.mean(list(ious.values()))), ious)
    rows = {}
    set_seed(0, reproducible=True)
    fixed = unet_learner(full, lite0_encoder, last_cross=False)
    with fixed.no_bar(), fixed.no_logging():
        wall, cpu = _timed(lambda: fixed.fine_tune(epochs, base_lr=lr))
    err, miou, ious = score(fixed)
    rows["fixed"] = dict(schedule=f"1 + {epochs} epochs at {w}x{h}", wall_s=wall, cpu_s=cpu,
                         error=err, mean_iou=miou, iou=ious)
    set_seed(0, reproducible=True)
    prog = unet_learner(dls((h // 2, w // 2)), lite0_encoder, last_cross=False)
    def progressive():
        prog.fine_tune(epochs // 2, base_lr=lr)
        prog.dls = full
        prog.fit_one_cycle(epochs - epochs // 2, lr_max=slice(lr / 200, lr / 2))
    with prog.no_bar(), prog.no_logging(): wall, cpu = _timed(progressive)
    err, miou, ious = score(prog)
    rows["progressive"] = dict(schedule=f"1 + {epochs // 2} at {w // 2}x{h // 2}, "
                                        f"{epochs - epochs // 2} at {w}x{h}",
                               wall_s=wall, cpu_s=cpu, error=err, mean_iou=miou, iou=ious)
    return dict(data=str(path), rows=rows)


def bands(epochs, lr=3e-3):
    "Error rate of the same pretrained recipe on RGB, RGB + infrared, and red + infrared tiles."
    from fastai.vision.all import error_rate, set_seed
    from htc_dl.vision_plus import BANDS, band_tiles, band_dls, band_learner
    path, rows = band_tiles(), {}
    for name, chosen in {"RGB": BANDS[:3], "RGB + infrared": BANDS,
                         "red + infrared": ("red", "infrared")}.items():
        set_seed(0, reproducible=True)
        learn = band_learner(band_dls(path, chosen, bs=16), chosen, metrics=error_rate)
        # the new first layer must learn: no frozen epoch, no tiny rate for the body
        # (as in the lesson)
        learn.unfreeze()
        with learn.no_bar(), learn.no_logging():
            wall, cpu = _timed(lambda: learn.fit_one_cycle(epochs, lr))
        rows[name] = dict(bands=len(chosen), wall_s=wall, cpu_s=cpu,
                          error=float(learn.validate()[1]))
    return dict(data=str(path), rows=rows)


def measure():
    "Every figure of the section, as a dict."
    warnings.filterwarnings("ignore")
    from htc_dl.data import small_mode
    small = small_mode()
    if small: torch.set_num_threads(1)
    load = os.getloadavg()[0]
    return dict(small=small, load_before=load, segmentation=segmentation(6 if small else 12),
                bands=bands(5 if small else 10), load_after=os.getloadavg()[0],
                threads=torch.get_num_threads())


def render(fig):
    "The markdown section for `fig` (what `measure` returned)."
    seg, band = fig["segmentation"]["rows"], fig["bands"]["rows"]
    out = [f"### Vision beyond classification (lesson 06f, "
           f"{'small' if fig['small'] else 'full'} mode, {fig['threads']} thread(s), "
           f"load average {fig['load_before']:.1f} -> {fig['load_after']:.1f})", "",
           f"U-Net (`unet_learner` on EfficientNet-Lite0) on `{fig['segmentation']['data']}`:", "",
           "| training | schedule | CPU s | wall s | error without Void | mean IoU |",
           "|---|---|---|---|---|---|"]
    out += [f"| {k} | {r['schedule']} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} | {r['error']:.1%} | "
            f"{r['mean_iou']:.3f} |" for k, r in seg.items()]
    out += ["", "IoU per class (fixed size): "
            + ", ".join(f"{c} {v:.2f}"
                        for c, v in sorted(seg["fixed"]["iou"].items(), key=lambda kv: kv[1])), "",
            "Pretrained Lite0, first convolution adapted to the bands (copy RGB, others from "
            "their mean), drawn field tiles:", "",
            "| bands | channels | CPU s | error rate |", "|---|---|---|---|"]
    out += [f"| {k} | {r['bands']} | {r['cpu_s']:.0f} | {r['error']:.1%} |"
            for k, r in band.items()]
    return "\n".join(out) + "\n"


def run():
    "Measure and return the markdown section."
    return render(measure())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args()
    fig = measure()
    if args.json:
        with open(args.json, "w") as f: json.dump(fig, f, indent=1, default=float)
    print(render(fig))
