"""Lesson 6's transfer-learning run (pet breeds, pretrained body, `fine_tune`) on one process or \
several.

One process:            python scripts/fine_tune_pets.py
Several GPUs:           accelerate launch --multi_gpu --num_processes 2 scripts/fine_tune_pets.py \
--size full --fp16
Several CPU processes:  accelerate launch --multi_gpu --num_processes 2 scripts/fine_tune_pets.py \
--size small
(`--multi_gpu` is Accelerate's switch for "start one process per device through torchrun"; with no
GPU the processes run on the CPU and talk through the gloo backend.) The training is
`htc_dl.vision_plus.fine_tune_pets`, where fastai's `learn.distrib_ctx()` does the distribution;
this file only reads the options and reports the metrics.
"""
import argparse, json
from pathlib import Path


def main(argv=None):
    """Fine-tune a pretrained pet-breed classifier; rank 0 prints its metrics as JSON (and writes
    them to --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"),
                        help="data and recipe size; default: small without a GPU, else full")
    parser.add_argument("--img_size", type=int,
                        help="image size in pixels; default 96 small, 224 full")
    parser.add_argument("--epochs", type=int,
                        help="epochs after the frozen one; default 2 small, 8 full")
    parser.add_argument("--bs", type=int, default=32,
                        help="total batch size, split evenly over the processes (default 32)")
    parser.add_argument("--lr", type=float, default=2e-3,
                        help="fine_tune's base_lr (default 2e-3, fastai's)")
    parser.add_argument("--fp16", action="store_true", help="train in mixed precision (GPUs only)")
    parser.add_argument("--out", help="write rank 0's metrics to this JSON file")
    args = parser.parse_args(argv)
    from htc_dl.vision_plus import fine_tune_pets
    metrics = fine_tune_pets(size=args.size, img_size=args.img_size, epochs=args.epochs, bs=args.bs,
                             lr=args.lr, fp16=args.fp16)
    if metrics["rank"] == 0:
        print(json.dumps(metrics))
        if args.out:
            from htc_dl.data import write_file_atomically
            write_file_atomically(args.out, lambda tmp: Path(tmp).write_text(json.dumps(metrics)))


if __name__ == "__main__":
    main()
