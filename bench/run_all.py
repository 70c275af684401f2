"""`make bench`: run every benchmark and write bench/RESULTS.md. A section that crashes or overruns
its cap, or a notebook that fails or kills its kernel, fails the run after the report is written:
exit status 1 and a line naming each. Sections left out (BENCH_SECTIONS, budget) and notebooks
stopped at their time limit do not.

Sections (each prints its table as it goes): lesson notebooks executed once with nbclient, offline
(run time, the kernel's peak memory and the headline figures read from the kernel), import times,
app handler latency, Voila cold start in Chromium, fp32/fp16/bf16 epoch times, then the sections
that write their own Markdown (MARKDOWN_SECTIONS: memory in the online mode, deployment, one per
lesson that needs its own measurement). The goals table at the top of RESULTS.md collects each
target and this run's figure for it (bench/goals.py). Knobs (environment variables):

  BENCH_BUDGET_S      the whole run, seconds (default 4500: 75 minutes); a section that would start
                      past it says so
  BENCH_RESERVE_S     part of the budget kept for the sections after the notebooks (default 2400)
  BENCH_NB_TIMEOUT    most seconds one small-mode notebook may take (default 420)
  BENCH_FULL          full mode (HTC_DL_SMALL=0) too: 1/all, notebook prefixes like "06b,03b", or 0;
                      default "auto": only the notebooks whose full mode fits on 2 CPU cores
                      (FULL_ON_CPU), if the budget has room
  BENCH_FULL_TIMEOUT  most seconds one full-mode notebook may take (default 600; asked-for full
                      modes are outside the budget)
  BENCH_SECTIONS      subset to run, e.g. "notebooks,imports" (default: all)
  BENCH_NOTEBOOKS     only the notebooks whose names start with these prefixes, e.g. "03b,06b"
                      (default: all)
  BENCH_OUT           where the Markdown goes (default bench/RESULTS.md); raw figures go to
                      test-output/bench/run.json

`python bench/run_all.py --render` rewrites the Markdown from test-output/bench/run.json without
measuring again. Either way the goals table of bench/RESULTS.md is copied into README.md, between
its goals markers (not when BENCH_OUT writes the page elsewhere).
"""
import datetime, json, os, platform, subprocess, sys, threading, time, traceback
from pathlib import Path

from report import FULL_ON_CPU, render, write_readme_goals

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
RAW = ROOT / "test-output" / "bench"
# run() -> Markdown, or dict(markdown=..., goals=[rows of the goals table]); most seconds each (the
# run's budget caps them too: a section that would start with less than a minute left says so
# instead). Memory comes last: it stops starting notebooks when the budget runs out and names the
# ones it did not measure.
MARKDOWN_SECTIONS = {"classifier_cold_start": 300, "deploy": 600, "camera": 300, "latent": 400,
                     "digit_studio": 400, "vision": 600, "attacks": 400, "text": 600,
                     "review_app": 400, "gans": 600, "memory": 1800}
SECTIONS = ["notebooks", "imports", "apps", "voila", "precision", *MARKDOWN_SECTIONS]


def env_int(name, default): return int(os.environ.get(name) or default)


class Clock:
    """The run's budget, and the load average sampled every 10 s while it runs (other jobs make
    timings noisy)."""
    def __init__(self, budget_s):
        self.t0, self.budget_s, self.loads, self._stop = (time.monotonic(), budget_s,
                                                          [os.getloadavg()[0]], threading.Event())
        threading.Thread(target=self._sample, daemon=True).start()
    def _sample(self):
        while not self._stop.wait(10): self.loads.append(os.getloadavg()[0])
    def elapsed(self): return time.monotonic() - self.t0
    def left(self): return self.budget_s - self.elapsed()
    def stop(self): self._stop.set(); self.loads.append(os.getloadavg()[0])


def run_script(name, timeout, *args):
    """Run bench/<name>.py in a fresh interpreter with --json; its parsed JSON, or {'error': ...}.
    Scripts that take --budget get `timeout` minus a margin, so they skip what does not fit and
    still write their JSON."""
    RAW.mkdir(parents=True, exist_ok=True)
    out = RAW / f"{name}.json"
    out.unlink(missing_ok=True)
    if timeout < 5: return {"error": "not run (budget)"}
    t = time.monotonic()
    try:
        p = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--json", str(out), *args],
                           cwd=ROOT, timeout=timeout, stdout=sys.stdout, stderr=subprocess.PIPE,
                           text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if not out.exists():
        tail = [l for l in p.stderr.strip().splitlines() if "Warning" not in l][-3:]
        return {"error": f"exit {p.returncode}: " + " / ".join(tail)[:400]}
    return {"result": json.loads(out.read_text()), "seconds": time.monotonic() - t}


MARKER = "<<<bench-markdown>>>"


def run_markdown(name, timeout):
    """`bench/<name>.py`'s run() in a fresh interpreter: {'markdown': its section, 'goals': its
    goals rows} or {'error': ...}. The memory section measures the online mode (the notebook pass
    measured the offline one)."""
    if timeout < 60: return {"error": "not run (budget): the run's time was used up before it"}
    # memory stops starting notebooks in time to report (one takes up to 6 min)
    args = f"budget_s={timeout - 420}, modes=('online',)" if name == "memory" else ""
    code = (f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); import {name}; out = "
            f"{name}.run({args}); out = out if isinstance(out, dict) else {{'markdown': out}}; "
            f"print({MARKER!r}); print(json.dumps(out))")
    t = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=timeout,
                           capture_output=True, text=True)
    except subprocess.TimeoutExpired: return {"error": f"timed out after {timeout:.0f} s"}
    if MARKER not in p.stdout:
        tail = [l for l in p.stderr.strip().splitlines() if "Warning" not in l][-3:]
        return {"error": f"exit {p.returncode}: " + " / ".join(tail)[:400]}
    return {**json.loads(p.stdout.split(MARKER, 1)[1]), "seconds": time.monotonic() - t}


# ------------------------------------------------------------------ notebooks

def lesson_notebooks():
    """nbs/core/0*.ipynb and nbs/lessons/*.ipynb, or those whose names start with a prefix in
    BENCH_NOTEBOOKS (e.g. '03b,06b')."""
    only = [p.strip() for p in os.environ.get("BENCH_NOTEBOOKS", "").split(",") if p.strip()]
    return [p for p in sorted([*(ROOT / "nbs" / "core").glob("0*.ipynb"),
                               *(ROOT / "nbs" / "lessons").glob("*.ipynb")], key=lambda p: p.name)
            if not only or any(p.name.startswith(o) for o in only)]




def wants_full(name, spec):
    """Whether to run `name` in full mode too: BENCH_FULL=auto (default) runs FULL_ON_CPU when the
    budget allows."""
    spec = spec.strip().lower()
    if spec in ("0", "no", "none"): return False
    if spec in ("", "auto"): return name.startswith(FULL_ON_CPU)
    if spec in ("1", "all", "yes"): return True
    return any(name.startswith(p.strip()) for p in spec.split(",") if p.strip())


def run_notebooks(clock, reserve_s):
    from notebooks import run_notebook
    from quality import expressions_for
    nb_cap, full_spec, full_cap = (env_int("BENCH_NB_TIMEOUT", 420),
                                   os.environ.get("BENCH_FULL", ""),
                                   env_int("BENCH_FULL_TIMEOUT", 600))
    rows, paths = [], {path.name: path for path in lesson_notebooks()}
    for path in paths.values():
        budget = min(nb_cap, clock.left() - reserve_s)
        row = {"notebook": path.name}
        if budget < 20: row["small"] = {"status": "not run (budget)"}
        else:
            print(f"-- {path.name} small mode (budget {budget:.0f} s)", flush=True)
            row["small"] = _safe_run(run_notebook, path, True, int(budget),
                                     expressions_for(path.name))
            _print_run(row["small"])
        rows.append(row)
    auto = full_spec.strip().lower() in ("", "auto")
    for row in rows:
        if not wants_full(row["notebook"], full_spec):
            row["full"] = {"status": "not run (budget)", "why": "BENCH_FULL=1 runs it"}; continue
        # asked for explicitly: outside the budget
        budget = min(full_cap, clock.left() - reserve_s) if auto else full_cap
        if budget < 60:
            row["full"] = {"status": "not run (budget)", "why": "no time left in this run"}
            continue
        print(f"-- {row['notebook']} full mode (budget {budget:.0f} s)", flush=True)
        row["full"] = _safe_run(run_notebook, paths[row["notebook"]], False, int(budget),
                                expressions_for(row["notebook"]))
        _print_run(row["full"])
    os.environ["HTC_DL_SMALL"] = "1"
    return rows


def _safe_run(fn, *args):
    try: return fn(*args)
    except Exception as e:
        traceback.print_exc()
        return {"status": "error",
                "error": f"benchmark could not run it: {type(e).__name__}: {e}"[:300]}


def _print_run(r):
    print(f"   {r.get('status')}: {r.get('wall_s', '-')} s, peak {r.get('peak_rss_mib', '-')} MiB"
          + (f" ({r['error']})" if r.get("error") else ""), flush=True)


def machine():
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((l.split(":", 1)[1].strip() for l in info.splitlines()
                if l.startswith("model name")),
               platform.processor() or "?")
    mem = next((int(l.split()[1]) // 2**20 for l in Path("/proc/meminfo").read_text().splitlines()
                if l.startswith("MemTotal")), "?")
    flags = sorted(set(info.split()) & INT8_FLAGS)
    return dict(cpu=cpu, cores=os.cpu_count(), mem_gib=mem, int8_flags=flags)


# int8 and bf16 dot-product instructions
INT8_FLAGS = {"avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}


def cached_data():
    """Offline data sets already written under the data folder (the first notebook to need one pays
    for writing it)."""
    root = Path(os.environ.get("HTC_DL_DATA") or Path.home() / ".fastai" / "data") / "offline"
    return (sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if root.is_dir() else [])


def versions():
    code = ("import json, importlib.metadata as m, sys\nv = {'python': sys.version.split()[0]}\n"
            "for p in ['torch', 'fastai', 'htc_dl', 'nbclient', 'voila', 'ipywidgets']:\n"
            "    try: v[p] = m.version(p)\n    except Exception: v[p] = 'not installed'\n"
            "try:\n    import htc_dl; v['htc_dl'] = htc_dl.__version__\nexcept Exception: pass\n"
            "import torch\nv['_cuda'] = torch.cuda.is_available()\n"
            "v['_gpu'] = torch.cuda.get_device_name(0) if v['_cuda'] else None\n"
            "print(json.dumps(v))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return json.loads(p.stdout.strip().splitlines()[-1])


def write_atomically(path, text):
    from htc_dl.data import write_file_atomically
    write_file_atomically(path, lambda tmp: tmp.write_text(text))


def write_readme(out_path, text):
    "README.md's goals block copies bench/RESULTS.md (not a page written elsewhere with BENCH_OUT)."
    if out_path.resolve() == BENCH / "RESULTS.md": write_readme_goals(text, ROOT / "README.md")


def main():
    out_path = Path(os.environ.get("BENCH_OUT") or BENCH / "RESULTS.md")
    # rewrite the Markdown from the last run's record, e.g. after editing this file
    if "--render" in sys.argv:
        text = render(json.loads((RAW / "run.json").read_text()))
        write_atomically(out_path, text); write_readme(out_path, text); print(text); return
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = Clock(env_int("BENCH_BUDGET_S", 4500))
    reserve = env_int("BENCH_RESERVE_S", 2400)
    # the notebook pass is the offline mode; memory measures online
    os.environ.setdefault("HTC_DL_OFFLINE", "1")
    chosen = [s.strip() for s in (os.environ.get("BENCH_SECTIONS")
                                  or ",".join(SECTIONS)).split(",")]
    # the notebooks' kernels and the section scripts use this checkout's htc_dl, installed or not
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    v = versions()
    run = dict(started=f"{started:%Y-%m-%d %H:%M}", budget_s=clock.budget_s, cuda=v.pop("_cuda"),
               gpu=v.pop("_gpu"), versions=v, cached=cached_data(),
               env={k: os.environ.get(k) for k in ("HTC_DL_OFFLINE", "HTC_DL_DATA")},
               **machine(), sections={})
    sec, skipped = run["sections"], {"error": "not run (BENCH_SECTIONS)"}
    print(f"htc_dl benchmarks: budget {clock.budget_s} s, sections {chosen}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    sec["notebooks"] = []
    if "notebooks" in chosen:
        try: sec["notebooks"] = run_notebooks(clock, reserve)
        except Exception as e:
            traceback.print_exc(); run["crashes"] = {"notebooks": f"{type(e).__name__}: {e}"[:300]}
    left = lambda cap: max(0, min(cap, clock.left()))
    print("-- import times", flush=True)
    sec["imports"] = run_script("imports", left(240)) if "imports" in chosen else skipped
    print("-- app latency", flush=True)
    sec["apps"] = run_script("apps_latency", left(240)) if "apps" in chosen else skipped
    print("-- voila cold start", flush=True)
    voila_s = left(300)
    sec["voila"] = (run_script("voila_start", voila_s + 30, "--budget", str(voila_s))
                    if "voila" in chosen else skipped)
    print("-- precision", flush=True)
    precision_s = left(300)
    sec["precision"] = (run_script("precision", precision_s + 30, "--budget", str(precision_s))
                        if "precision" in chosen else skipped)
    for name, cap in MARKDOWN_SECTIONS.items():
        print(f"-- {name}", flush=True)
        sec[name] = run_markdown(name, left(cap)) if name in chosen else skipped
    clock.stop()
    run.update(elapsed_s=clock.elapsed(), loads=clock.loads)

    RAW.mkdir(parents=True, exist_ok=True)
    write_atomically(RAW / "run.json", json.dumps(run, indent=1))
    text = render(run)
    write_atomically(out_path, text)
    write_readme(out_path, text)
    print("\n" + text, flush=True)
    print(f"Wrote {out_path} in {clock.elapsed() / 60:.1f} min (raw figures: {RAW / 'run.json'}).",
          flush=True)
    return crashed(run)


def crashed(run):
    "{section: why} for each section that crashed or overran its cap; notebooks: those that failed."
    out = dict(run.get("crashes", {}))
    for name, r in run["sections"].items():
        if name == "notebooks":
            bad = [f"{row['notebook']} ({mode})" for row in r for mode in ("small", "full")
                   if row.get(mode, {}).get("status") in ("error", "dead")]
            if bad: out[name] = "failed: " + ", ".join(bad)
        elif r.get("error") and not r["error"].startswith("not run"): out[name] = r["error"]
    return out


if __name__ == "__main__":
    try: failed = main()
    except Exception:
        traceback.print_exc(); failed = {"run_all": "crashed (traceback above)"}
    for name, why in (failed or {}).items():
        print(f"FAIL: bench section {name}: {why}", file=sys.stderr)
    sys.exit(1 if failed else 0)
