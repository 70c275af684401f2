"""`make bench`: run every benchmark and write bench/RESULTS.md. Benchmarks report; they never fail the build.

Sections (each prints its table as it goes): lesson notebooks executed once with nbclient (run time, peak memory and
the headline figures read from the kernel), import times, app handler latency, Voila cold start in Chromium,
fp32/fp16/bf16 epoch times. Knobs (environment variables):

  BENCH_BUDGET_S      whole run, seconds (default 1620: `make bench` stays under 30 minutes)
  BENCH_RESERVE_S     part of the budget kept for the sections after the notebooks (default 540)
  BENCH_NB_TIMEOUT    most seconds one small-mode notebook may take (default 420)
  BENCH_FULL          full mode (HTC_DL_SMALL=0) too: 1/all, notebook prefixes like "06b,03b", or 0; default "auto":
                      only the notebooks whose full mode fits on 2 CPU cores (FULL_ON_CPU), if the budget has room
  BENCH_FULL_TIMEOUT  most seconds one full-mode notebook may take (default 600; asked-for full modes are outside the budget)
  BENCH_SECTIONS      subset to run, e.g. "notebooks,imports" (default: all)
  BENCH_NOTEBOOKS     only the notebooks whose names start with these prefixes, e.g. "03b,06b" (default: all)
  BENCH_OUT           where the Markdown goes (default bench/RESULTS.md); raw figures go to test-output/bench/run.json

`python bench/run_all.py --render` rewrites the Markdown from test-output/bench/run.json without measuring again.
"""
import datetime, json, os, platform, subprocess, sys, threading, time, traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
RAW = ROOT / "test-output" / "bench"
SECTIONS = ["notebooks", "imports", "apps", "voila", "precision"]


def env_int(name, default): return int(os.environ.get(name) or default)


class Clock:
    "The run's budget, and the load average sampled every 10 s while it runs (other jobs make timings noisy)."
    def __init__(self, budget_s):
        self.t0, self.budget_s, self.loads, self._stop = time.monotonic(), budget_s, [os.getloadavg()[0]], threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()
    def _sample(self):
        while not self._stop.wait(10): self.loads.append(os.getloadavg()[0])
    def elapsed(self): return time.monotonic() - self.t0
    def left(self): return self.budget_s - self.elapsed()
    def stop(self): self._stop.set(); self.loads.append(os.getloadavg()[0])


def run_script(name, timeout, *args):
    """Run bench/<name>.py in a fresh interpreter with --json; its parsed JSON, or {'error': ...}. Scripts that take
    --budget get `timeout` minus a margin, so they skip what does not fit and still write their JSON."""
    RAW.mkdir(parents=True, exist_ok=True)
    out = RAW / f"{name}.json"
    out.unlink(missing_ok=True)
    if timeout < 5: return {"error": "not run (budget)"}
    t = time.monotonic()
    try:
        p = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--json", str(out), *args], cwd=ROOT,
                           timeout=timeout, stdout=sys.stdout, stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if not out.exists():
        tail = [l for l in p.stderr.strip().splitlines() if "Warning" not in l][-3:]
        return {"error": f"exit {p.returncode}: " + " / ".join(tail)[:400]}
    return {"result": json.loads(out.read_text()), "seconds": time.monotonic() - t}


# ------------------------------------------------------------------ notebooks

def lesson_notebooks():
    "nbs/core/0*.ipynb and nbs/lessons/*.ipynb, or those whose names start with a prefix in BENCH_NOTEBOOKS (e.g. '03b,06b')."
    only = [p.strip() for p in os.environ.get("BENCH_NOTEBOOKS", "").split(",") if p.strip()]
    return [p for p in sorted([*(ROOT / "nbs" / "core").glob("0*.ipynb"), *(ROOT / "nbs" / "lessons").glob("*.ipynb")], key=lambda p: p.name) if not only or any(p.name.startswith(o) for o in only)]


FULL_ON_CPU = ("06b_",)   # full modes that fit in `make bench` on 2 CPU cores (the full MovieLens-sized ratings)


def wants_full(name, spec):
    "Whether to run `name` in full mode too: BENCH_FULL=auto (default) runs FULL_ON_CPU when the budget allows."
    spec = spec.strip().lower()
    if spec in ("0", "no", "none"): return False
    if spec in ("", "auto"): return name.startswith(FULL_ON_CPU)
    if spec in ("1", "all", "yes"): return True
    return any(name.startswith(p.strip()) for p in spec.split(",") if p.strip())


def run_notebooks(clock, reserve_s):
    from notebooks import run_notebook
    from quality import expressions_for
    nb_cap, full_spec, full_cap = env_int("BENCH_NB_TIMEOUT", 420), os.environ.get("BENCH_FULL", ""), env_int("BENCH_FULL_TIMEOUT", 600)
    rows = []
    for path in lesson_notebooks():
        budget = min(nb_cap, clock.left() - reserve_s)
        row = {"notebook": path.name}
        if budget < 20: row["small"] = {"status": "not run (budget)"}
        else:
            print(f"-- {path.name} small mode (budget {budget:.0f} s)", flush=True)
            row["small"] = _safe_run(run_notebook, path, True, int(budget), expressions_for(path.name))
            _print_run(row["small"])
        rows.append(row)
    auto = full_spec.strip().lower() in ("", "auto")
    for row in rows:
        if not wants_full(row["notebook"], full_spec):
            row["full"] = {"status": "not run (budget)", "why": "BENCH_FULL=1 runs it"}; continue
        budget = min(full_cap, clock.left() - reserve_s) if auto else full_cap   # asked for explicitly: outside the budget
        if budget < 60:
            row["full"] = {"status": "not run (budget)", "why": "no time left in this run"}; continue
        print(f"-- {row['notebook']} full mode (budget {budget:.0f} s)", flush=True)
        row["full"] = _safe_run(run_notebook, ROOT / "nbs" / row["notebook"], False, int(budget), expressions_for(row["notebook"]))
        _print_run(row["full"])
    os.environ["HTC_DL_SMALL"] = "1"
    return rows


def _safe_run(fn, *args):
    try: return fn(*args)
    except Exception as e:
        traceback.print_exc()
        return {"status": "error", "error": f"benchmark could not run it: {type(e).__name__}: {e}"[:300]}


def _print_run(r):
    print(f"   {r.get('status')}: {r.get('wall_s', '-')} s, peak {r.get('peak_rss_mib', '-')} MiB"
          + (f" ({r['error']})" if r.get("error") else ""), flush=True)


# ------------------------------------------------------------------ Markdown

def md_table(header, rows):
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
                     + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


def status_text(r):
    s = r.get("status", "?")
    if s == "ok": return "ok"
    if s == "timeout": return f"timed out after {r.get('budget_s')} s (cell {r.get('failed_cell')})"
    if s.startswith("not run"): return s + (f": {r['why']}" if r.get("why") else "")
    return f"{s} in cell {r.get('failed_cell', '?')}: {r.get('error', '')}"[:160]


def run_cells(r):
    if "wall_s" not in r: return "-", "-", "-"
    return f"{r['wall_s']:.1f}", f"{r.get('cpu_s', 0):.0f}", f"{r['peak_rss_mib']:,}"


def notebooks_md(rows):
    out = ["## 1. Course run time",
           "Each lesson notebook (`nbs/core/0*.ipynb and nbs/lessons/*.ipynb`) executed once with nbclient in a fresh kernel, cells in order "
           "(cells marked `#| notest` or `#| eval: false` skipped, as in `make test`). Wall time counts the cells, not the "
           "kernel start; CPU s is the user + system time of the kernel and its children over the same span (2 cores: "
           "up to twice the wall time; less disturbed by other jobs than wall time); peak memory is the RSS of the kernel "
           "and all its children, sampled every 0.2 s with psutil. A notebook that stops early shows how far it got.", ""]
    table = []
    for row in rows:
        s, f = row["small"], row["full"]
        table.append([row["notebook"], status_text(s), *run_cells(s), status_text(f), *run_cells(f)])
    ok = [row["small"] for row in rows if row["small"].get("status") == "ok"]
    all_wall = [row["small"]["wall_s"] for row in rows if "wall_s" in row["small"]]
    all_cpu = [row["small"].get("cpu_s", 0) for row in rows]
    table.append(["**whole course**", f"{len(ok)}/{len(rows)} ok", f"**{sum(all_wall):.1f}** ({sum(all_wall) / 60:.1f} min)",
                  f"{sum(all_cpu):.0f}", f"{max((row['small'].get('peak_rss_mib', 0) for row in rows), default=0):,} (max)",
                  "", "", "", ""])
    out.append(md_table(["notebook", "small: status", "small: wall s", "small: CPU s", "small: peak MiB", "full: status",
                         "full: wall s", "full: CPU s", "full: peak MiB"], table))
    out += ["", "Full mode (`HTC_DL_SMALL=0`: the full-size data sets, more epochs) is meant for a GPU. By default only the "
            f"notebooks whose full mode fits on 2 CPU cores run it ({', '.join(p + '*' for p in FULL_ON_CPU)}), and only while "
            "the 30-minute budget has room; the rest would not fit in `make bench`. `BENCH_FULL=1 make bench` runs every "
            "notebook in full mode too, each stopped after `BENCH_FULL_TIMEOUT` seconds (default 600) and then reported as "
            "timed out."]
    return "\n".join(out)


def quality_md(rows):
    from quality import rows_for, format_value
    out = ["## 2. Quality: our headline figures beside fastbook's",
           "Read from each notebook's namespace after the run above (no extra training): an extra cell evaluates the "
           "names listed in `bench/quality.py`. \"not found\" means the lesson does not (yet) define that name. Our data: "
           "what `htc_dl.data` printed while the notebook ran (offline copies here: no network).", ""]
    table = []
    for row in rows:
        for q in rows_for(row["notebook"]):
            cells = []
            for mode in ("small", "full"):
                r = row[mode]
                if r.get("status", "").startswith("not run"): cells.append("not run"); continue
                if not q["expr"]: cells.append(q.get("ours", "-")); continue
                v = r.get("values", {}).get(q["expr"])
                cells.append(format_value(v, q["fmt"]) if v is not None else ("not found" if r.get("values") else "no value (run failed)"))
            src = (q["dataset"] + ": " + row["small"]["sources"][q["dataset"]] if q["dataset"] in row["small"].get("sources", {}) else None) or row["small"].get("sources", {}) and "; ".join(
                f"{k}: {v}" for k, v in row["small"]["sources"].items()) or "-"
            table.append([row["notebook"].split("_")[0], q["what"], f"`{q['expr']}`" if q["expr"] else "-", cells[0], cells[1], src, q["book"], q["book_data"]])
    out.append(md_table(["lesson", "figure", "name", "ours, small", "ours, full", "our data", "fastbook", "fastbook's data"], table))
    return "\n".join(out)


def imports_md(sec):
    out = ["## 4. Import time",
           "`import X` timed inside a fresh interpreter (median of 3), whether it loaded fastai or torch, and the "
           "interpreter's peak RSS after it. fastai should load only in modules that teach with it.", ""]
    if "error" in sec: return "\n".join(out + [f"not measured: {sec['error']}"])
    out.append(md_table(["module", "import s (median)", "runs", "fastai loaded", "torch loaded", "peak RSS MiB"],
                        [[f"`{r['module']}`", f"{r['s']:.2f}", ", ".join(map(str, r["runs"])), "yes" if r["fastai"] else "no",
                          "yes" if r["torch"] else "no", r["maxrss_mib"]] if "s" in r else [f"`{r['module']}`", r["error"], "", "", "", ""]
                         for r in sec["result"]]))
    return "\n".join(out)


def apps_md(sec, voila):
    out = ["## 3. App latency",
           "Each app built as a widget (the function its Voila notebook calls) and its handler driven from Python, "
           "no browser: one warm-up call, then timed calls; p50/p95 over those.", ""]
    if "error" in sec: out.append(f"not measured: {sec['error']}")
    else:
        out.append(md_table(["app", "response", "n", "p50 ms", "p95 ms", "target", "note"],
                            [[r["app"], r.get("response", ""), r.get("n", "-"), f"{r['p50_ms']:.1f}" if "p50_ms" in r else "-",
                              f"{r['p95_ms']:.1f}" if "p95_ms" in r else "-", r.get("target", ""), r.get("error") or r.get("note", "")]
                             for r in sec["result"]]))
    out += ["", "**Voila cold start**: a fresh Voila configured like `make start` (nbs/apps/voila.json, kernels preheated), "
            "headless Chromium opens the app as soon as the server answers; clock stops at the first visible widget.", ""]
    if "error" in voila: out.append(f"not measured: {voila['error']}")
    else:
        out.append(md_table(["app", "server answers s", "open -> first widget s", "launch -> first widget s", "note"],
                            [[r["app"], f"{r['server_up_s']:.1f}", f"{r['first_render_s']:.1f}", f"{r['launch_to_render_s']:.1f}", ""]
                             if "error" not in r else [r["app"], "-", "-", "-", r["error"]] for r in voila["result"]]))
    return "\n".join(out)


def precision_md(sec, cuda):
    out = ["## 5. GPU and mixed precision", ""]
    if not cuda: out.append("**No GPU available in this run: CPU only.** On a CUDA machine the same script measures fp32, "
                            "`to_fp16()` and bf16 per epoch, peak GPU memory, and the CPU vs GPU epoch ratio.")
    if "error" in sec: return "\n".join(out + ["", f"not measured: {sec['error']}"])
    r = sec["result"]
    out += ["", f"Task: {r['task']}; data: {r['data']}; torch threads: {r['torch_threads']}. The modes train in rounds (one "
            "epoch of each mode per round, round 0 a warm-up), so a change in the machine's load hits them alike. Seconds "
            "per training epoch: median over the measured rounds; CPU s: process time of all threads in that epoch.", ""]
    rows = []
    for name, v in r["rows"].items():
        if "epoch_s" not in v: rows.append([name, "not run (budget)"] + [""] * 7); continue
        epochs = ", ".join(f"{t:.1f}" for t in v["epoch_times"]) or f"warm-up only: {v['warmup_s']:.1f}"
        rows.append([name, f"{v['epoch_s']:.2f}", epochs, f"**{v['vs_fp32']:.2f}**", f"{v.get('cpu_epoch_s', 0):.1f}",
                     f"{v.get('cpu_vs_fp32', 0):.2f}", f"{v['peak_gpu_mib']:,}" if "peak_gpu_mib" in v else "-",
                     f"{v['valid_loss']:.3f}" if "valid_loss" in v else "-", "; ".join(v.get("warnings", []))[:200] or "-"])
    out.append(md_table(["mode", "s/epoch", "epochs (s)", "wall vs fp32", "CPU s/epoch", "CPU vs fp32", "peak GPU MiB",
                         "valid loss", "warnings"], rows))
    if cuda and "cpu_over_gpu_fp32" in r: out += ["", f"CPU fp32 epoch / GPU fp32 epoch: **{r['cpu_over_gpu_fp32']:.1f}x**."]
    if not cuda:
        out += ["", "`to_fp16()` on CPU trains in fp32 (fastai's MixedPrecision autocasts on 'cuda' only; the warnings above say "
                "autocast and GradScaler are disabled), so its ratio to fp32 is noise, not a speed-up. fastai's `to_bf16()` is "
                "CUDA-only as well; the bf16 row uses `torch.autocast('cpu', dtype=torch.bfloat16)` through a small callback."]
    return "\n".join(out)


def header_md(run):
    cores, loads = run["cores"], run["loads"]
    lines = ["# htc_dl benchmarks", "",
             "Written by `make bench` (`bench/run_all.py`); every figure below was measured in that one run.", "",
             f"- Date: {run['started']} UTC; whole run {run['elapsed_s'] / 60:.1f} min (budget {run['budget_s'] / 60:.0f} min)",
             f"- CPU: {run['cpu']}, {cores} cores; memory {run['mem_gib']} GiB",
             f"- GPU: {run['gpu'] if run['cuda'] else 'no GPU available in this run: CPU only'}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()),
             f"- Data: HTC_DL_OFFLINE={run['env'].get('HTC_DL_OFFLINE') or '(unset)'}, "
             f"HTC_DL_DATA={run['env'].get('HTC_DL_DATA') or '(unset: fastai data folder)'}; offline data sets already on disk "
             f"at the start: {', '.join(run['cached']) or 'none (the first notebooks paid for writing them)'}",
             f"- Load average (1 min) during the run, sampled every 10 s: min {min(loads):.1f}, median "
             f"{sorted(loads)[len(loads) // 2]:.1f}, max {max(loads):.1f} on {cores} cores"]
    if max(loads) > cores * 0.75:
        lines.append(f"- **Timings are noisy**: other jobs were using the CPU during this run (load above {cores * 0.75:.1f} "
                     "at times); treat wall times as upper bounds, not as what a quiet machine gives. CPU seconds are "
                     "less affected.")
    return "\n".join(lines)


def render(run):
    "RESULTS.md from a run's record (`test-output/bench/run.json`)."
    sec = run["sections"]
    nb_rows = sec.get("notebooks")
    parts = [header_md(run)]
    parts.append(notebooks_md(nb_rows) if nb_rows else "## 1. Course run time\n\nnot run (BENCH_SECTIONS)")
    parts.append(quality_md(nb_rows) if nb_rows else "## 2. Quality\n\nnot run (BENCH_SECTIONS)")
    parts += [apps_md(sec["apps"], sec["voila"]), imports_md(sec["imports"]), precision_md(sec["precision"], run["cuda"])]
    return "\n\n".join(parts) + "\n"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
               platform.processor() or "?")
    mem = next((int(l.split()[1]) // 2**20 for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "?")
    return dict(cpu=cpu, cores=os.cpu_count(), mem_gib=mem)


def cached_data():
    "Offline data sets already written under the data folder (the first notebook to need one pays for writing it)."
    root = Path(os.environ.get("HTC_DL_DATA") or Path.home() / ".fastai" / "data") / "offline"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def versions():
    code = ("import json, importlib.metadata as m, sys\nv = {'python': sys.version.split()[0]}\n"
            "for p in ['torch', 'fastai', 'htc_dl', 'nbclient', 'voila', 'ipywidgets']:\n"
            "    try: v[p] = m.version(p)\n    except Exception: v[p] = 'not installed'\n"
            "try:\n    import htc_dl; v['htc_dl'] = htc_dl.__version__\nexcept Exception: pass\n"
            "import torch\nv['_cuda'] = torch.cuda.is_available()\n"
            "v['_gpu'] = torch.cuda.get_device_name(0) if v['_cuda'] else None\nprint(json.dumps(v))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return json.loads(p.stdout.strip().splitlines()[-1])


def write_atomically(path, text):
    from htc_dl.data import write_file_atomically
    write_file_atomically(path, lambda tmp: tmp.write_text(text))


def main():
    out_path = Path(os.environ.get("BENCH_OUT") or BENCH / "RESULTS.md")
    if "--render" in sys.argv:   # rewrite the Markdown from the last run's record, e.g. after editing this file
        text = render(json.loads((RAW / "run.json").read_text()))
        write_atomically(out_path, text); print(text); return
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = Clock(env_int("BENCH_BUDGET_S", 1620))
    reserve = env_int("BENCH_RESERVE_S", 540)
    chosen = [s.strip() for s in (os.environ.get("BENCH_SECTIONS") or ",".join(SECTIONS)).split(",")]
    # the notebooks' kernels and the section scripts use this checkout's htc_dl, installed or not
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    v = versions()
    run = dict(started=f"{started:%Y-%m-%d %H:%M}", budget_s=clock.budget_s, cuda=v.pop("_cuda"), gpu=v.pop("_gpu"),
               versions=v, cached=cached_data(), env={k: os.environ.get(k) for k in ("HTC_DL_OFFLINE", "HTC_DL_DATA")},
               **machine(), sections={})
    sec, skipped = run["sections"], {"error": "not run (BENCH_SECTIONS)"}
    print(f"htc_dl benchmarks: budget {clock.budget_s} s, sections {chosen}, load average {os.getloadavg()[0]:.1f}", flush=True)

    sec["notebooks"] = []
    if "notebooks" in chosen:
        try: sec["notebooks"] = run_notebooks(clock, reserve)
        except Exception: traceback.print_exc()
    left = lambda cap: max(0, min(cap, clock.left()))
    print("-- import times", flush=True)
    sec["imports"] = run_script("imports", left(240)) if "imports" in chosen else skipped
    print("-- app latency", flush=True)
    sec["apps"] = run_script("apps_latency", left(240)) if "apps" in chosen else skipped
    print("-- voila cold start", flush=True)
    voila_s = left(300)
    sec["voila"] = run_script("voila_start", voila_s + 30, "--budget", str(voila_s)) if "voila" in chosen else skipped
    print("-- precision", flush=True)
    precision_s = left(300)
    sec["precision"] = (run_script("precision", precision_s + 30, "--budget", str(precision_s))
                        if "precision" in chosen else skipped)
    clock.stop()
    run.update(elapsed_s=clock.elapsed(), loads=clock.loads)

    RAW.mkdir(parents=True, exist_ok=True)
    write_atomically(RAW / "run.json", json.dumps(run, indent=1))
    text = render(run)
    write_atomically(out_path, text)
    print("\n" + text, flush=True)
    print(f"Wrote {out_path} in {clock.elapsed() / 60:.1f} min (raw figures: {RAW / 'run.json'}).", flush=True)


if __name__ == "__main__":
    try: main()
    except Exception: traceback.print_exc()   # a benchmark reports; it never fails the build
    sys.exit(0)
