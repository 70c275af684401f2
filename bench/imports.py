"""Import time of `import htc_dl` and of each module, each in a fresh interpreter, and whether it
pulled in fastai.

Run alone: `.venv/bin/python bench/imports.py [--json out.json]`."""
import argparse, json, statistics, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, resource, sys, time
t = time.perf_counter()
import {module}
dt = time.perf_counter() - t
print(json.dumps(dict(s=dt, fastai='fastai' in sys.modules, torch='torch' in sys.modules,
                      maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def modules():
    "`htc_dl` and every `htc_dl.<module>` on disk (private ones left out)."
    return ["htc_dl"] + [f"htc_dl.{p.stem}" for p in sorted((ROOT / "htc_dl").glob("*.py"))
                         if not p.stem.startswith("_")]


def time_import(module, repeats=3, timeout=120):
    """Median seconds of `import module` over `repeats` fresh interpreters, plus what it loaded; an
    error string on failure."""
    runs = []
    for _ in range(repeats):
        p = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True,
                           text=True, cwd=ROOT, timeout=timeout)
        if p.returncode:
            return dict(module=module, error=(p.stderr.strip().splitlines() or ["?"])[-1][:200])
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return dict(module=module, s=statistics.median(r["s"] for r in runs),
                runs=[round(r["s"], 3) for r in runs], fastai=runs[-1]["fastai"],
                torch=runs[-1]["torch"], maxrss_mib=round(runs[-1]["maxrss_mib"]))


def main(argv=None):
    ap = argparse.ArgumentParser(); ap.add_argument("--json")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    for m in modules() + ["fastai.vision.all"]:
        try: r = time_import(m, args.repeats)
        except subprocess.TimeoutExpired: r = dict(module=m, error="timed out")
        rows.append(r)
        print(f"{m:24} " + (f"{r['s']:.2f} s  fastai={r['fastai']}  torch={r['torch']}  "
                            f"{r['maxrss_mib']} MiB" if "s" in r else r["error"]), flush=True)
    if args.json: Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
