"""bench/RESULTS.md from a run's record: the Markdown renderers of `make bench`, apart from the code
that measures.

`python bench/run_all.py --render` calls `render(run)` on test-output/bench/run.json without
measuring again. `write_readme_goals` copies the page's goals table into README.md.
"""
from pathlib import Path
from goals import goals_md

# full modes that fit in `make bench` on 2 CPU cores (the full MovieLens-sized ratings)
FULL_ON_CPU = ("06b_",)

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
    binder = f" ({r['binder_peak_mib']:,})" if "binder_peak_mib" in r else ""
    return (f"{r['wall_s']:.1f}", f"{r.get('cpu_s', 0):.0f}",
            f"{r.get('kernel_peak_mib', r['peak_rss_mib']):,}{binder}")


def notebooks_md(rows):
    out = ["## 1. Course run time",
           "Each lesson notebook (`nbs/core/0*.ipynb and nbs/lessons/*.ipynb`) executed once with "
           "nbclient in a fresh kernel, cells in order (cells marked `#| notest` or `#| eval: "
           "false` skipped, as in `make test`). Wall time counts the cells, not the kernel start; "
           "CPU s is the user + system time of the kernel and its children over the same span (2 "
           "cores: up to twice the wall time; less disturbed by other jobs than wall time); peak "
           "memory is the RSS of the kernel process itself, sampled every 0.2 s with psutil, with "
           "binder/start's environment, and in brackets the same less its pages of CUDA-only "
           "libraries: the figure for Binder's CPU-only PyTorch (see the memory section). The "
           "notebooks run offline (`HTC_DL_OFFLINE=1`); the memory section runs them online. A "
           "notebook that stops early shows how far it got.", ""]
    table = []
    for row in rows:
        s, f = row["small"], row["full"]
        table.append([row["notebook"], status_text(s), *run_cells(s), status_text(f),
                      *run_cells(f)])
    ok = [row["small"] for row in rows if row["small"].get("status") == "ok"]
    all_wall = [row["small"]["wall_s"] for row in rows if "wall_s" in row["small"]]
    all_cpu = [row["small"].get("cpu_s", 0) for row in rows]
    table.append(["**whole course**", f"{len(ok)}/{len(rows)} ok",
                  f"**{sum(all_wall):.1f}** ({sum(all_wall) / 60:.1f} min)", f"{sum(all_cpu):.0f}",
                  f"{max((row['small'].get('kernel_peak_mib', 0) for row in rows), default=0):,} "
                  "(max)", "", "", "", ""])
    out.append(md_table(["notebook", "small: status", "small: wall s", "small: CPU s",
                         "small: kernel peak MiB (Binder)",
                         "full: status", "full: wall s", "full: CPU s",
                         "full: kernel peak MiB (Binder)"], table))
    out += ["",
            "Full mode (`HTC_DL_SMALL=0`: the full-size data sets, more epochs) is meant for a "
            "GPU. By default only the notebooks whose full mode fits on 2 CPU cores run it "
            f"({', '.join(p + '*' for p in FULL_ON_CPU)}), and only while the run's budget has "
            "room; the rest would not fit in `make bench`. `BENCH_FULL=1 make bench` runs every "
            "notebook in full mode too, each stopped after `BENCH_FULL_TIMEOUT` seconds (default "
            "600) and then reported as timed out."]
    return "\n".join(out)


def quality_md(rows):
    from quality import rows_for, format_value
    out = ["## 2. Quality: our headline figures beside fastbook's",
           "Read from each notebook's namespace after the run above (no extra training): an extra "
           "cell evaluates the names listed in `bench/quality.py`. \"not found\" means the lesson "
           "does not (yet) define that name. Our data: what `htc_dl.data` printed while the "
           "notebook ran (offline copies here: no network).", ""]
    table = []
    for row in rows:
        for q in rows_for(row["notebook"]):
            cells = []
            for mode in ("small", "full"):
                r = row[mode]
                if r.get("status", "").startswith("not run"): cells.append("not run"); continue
                if not q["expr"]: cells.append(q.get("ours", "-")); continue
                v = r.get("values", {}).get(q["expr"])
                cells.append(format_value(v, q["fmt"]) if v is not None
                             else ("not found" if r.get("values") else "no value (run failed)"))
            src = (q["dataset"] + ": " + row["small"]["sources"][q["dataset"]]
                   if q["dataset"] in row["small"].get("sources", {}) else None) or row[
                       "small"].get("sources", {}) and "; ".join(
                f"{k}: {v}" for k, v in row["small"]["sources"].items()) or "-"
            table.append([row["notebook"].split("_")[0], q["what"],
                          f"`{q['expr']}`" if q["expr"] else "-", cells[0], cells[1], src,
                          q["book"], q["book_data"]])
    out.append(md_table(["lesson", "figure", "name", "ours, small", "ours, full", "our data",
                         "fastbook", "fastbook's data"], table))
    return "\n".join(out)


def imports_md(sec):
    out = ["## 4. Import time",
           "`import X` timed inside a fresh interpreter (median of 3), whether it loaded fastai or "
           "torch, and the interpreter's peak RSS after it. fastai should load only in modules "
           "that teach with it.", ""]
    if "error" in sec: return "\n".join(out + [f"not measured: {sec['error']}"])
    out.append(md_table(["module", "import s (median)", "runs", "fastai loaded", "torch loaded",
                         "peak RSS MiB"],
                        [[f"`{r['module']}`", f"{r['s']:.2f}", ", ".join(map(str, r["runs"])),
                          "yes" if r["fastai"] else "no",
                          "yes" if r["torch"] else "no", r["maxrss_mib"]] if "s" in r
                         else [f"`{r['module']}`", r["error"], "", "", "", ""]
                         for r in sec["result"]]))
    return "\n".join(out)


def apps_md(sec, voila):
    out = ["## 3. App latency",
           "Each app built as a widget (the function its Voila notebook calls) and its handler "
           "driven from Python, no browser: one warm-up call, then timed calls; p50/p95 over "
           "those.", ""]
    if "error" in sec: out.append(f"not measured: {sec['error']}")
    else:
        out.append(md_table(["app", "response", "n", "p50 ms", "p95 ms", "target", "note"],
                            [[r["app"], r.get("response", ""), r.get("n", "-"),
                              f"{r['p50_ms']:.1f}" if "p50_ms" in r else "-",
                              f"{r['p95_ms']:.1f}" if "p95_ms" in r else "-", r.get("target", ""),
                              r.get("error") or r.get("note", "")]
                             for r in sec["result"]]))
    out += ["",
            "**Voila cold start**: a fresh Voila configured like `make start` "
            "(nbs/apps/voila.json) but without preheated kernels, as on Binder; headless Chromium "
            "opens the app as soon as the server answers; clock stops at the first visible "
            "widget.", ""]
    if "error" in voila: out.append(f"not measured: {voila['error']}")
    else:
        out.append(md_table(["app", "server answers s", "open -> first widget s",
                             "launch -> first widget s", "note"],
                            [[r["app"], f"{r['server_up_s']:.1f}", f"{r['first_render_s']:.1f}",
                              f"{r['launch_to_render_s']:.1f}", ""]
                             if "error" not in r else [r["app"], "-", "-", "-", r["error"]]
                             for r in voila["result"]]))
    return "\n".join(out)


def precision_md(sec, cuda):
    out = ["## 5. GPU and mixed precision", ""]
    if not cuda: out.append("**No GPU available in this run: CPU only.** On a CUDA machine the "
                            "same script measures fp32, `to_fp16()` and bf16 per epoch, peak GPU "
                            "memory, and the CPU vs GPU epoch ratio.")
    if "error" in sec: return "\n".join(out + ["", f"not measured: {sec['error']}"])
    r = sec["result"]
    out += ["",
            f"Task: {r['task']}; data: {r['data']}; torch threads: {r['torch_threads']}. The modes "
            "train in rounds (one epoch of each mode per round, round 0 a warm-up), so a change "
            "in the machine's load hits them alike. Seconds per training epoch: median over the "
            "measured rounds; CPU s: process time of all threads in that epoch.", ""]
    rows = []
    for name, v in r["rows"].items():
        if "epoch_s" not in v: rows.append([name, "not run (budget)"] + [""] * 7); continue
        epochs = (", ".join(f"{t:.1f}" for t in v["epoch_times"])
                  or f"warm-up only: {v['warmup_s']:.1f}")
        rows.append([name, f"{v['epoch_s']:.2f}", epochs, f"**{v['vs_fp32']:.2f}**",
                     f"{v.get('cpu_epoch_s', 0):.1f}", f"{v.get('cpu_vs_fp32', 0):.2f}",
                     f"{v['peak_gpu_mib']:,}" if "peak_gpu_mib" in v else "-",
                     f"{v['valid_loss']:.3f}" if "valid_loss" in v else "-",
                     "; ".join(v.get("warnings", []))[:200] or "-"])
    out.append(md_table(["mode", "s/epoch", "epochs (s)", "wall vs fp32", "CPU s/epoch",
                         "CPU vs fp32", "peak GPU MiB", "valid loss", "warnings"], rows))
    if cuda and "cpu_over_gpu_fp32" in r:
        out += ["", f"CPU fp32 epoch / GPU fp32 epoch: **{r['cpu_over_gpu_fp32']:.1f}x**."]
    if not cuda:
        out += ["",
                "`to_fp16()` on CPU trains in fp32 (fastai's MixedPrecision autocasts on 'cuda' "
                "only; the warnings above say autocast and GradScaler are disabled), so its ratio "
                "to fp32 is noise, not a speed-up. fastai's `to_bf16()` is CUDA-only as well; the "
                "bf16 row uses `torch.autocast('cpu', dtype=torch.bfloat16)` through a small "
                "callback."]
    return "\n".join(out)


def header_md(run):
    cores, loads = run["cores"], run["loads"]
    lines = ["# htc_dl benchmarks", "",
             "Written by `make bench` (`bench/run_all.py`); every figure below was measured in "
             "that one run.", "",
             f"- Date: {run['started']} UTC; whole run {run['elapsed_s'] / 60:.1f} min (budget "
             f"{run['budget_s'] / 60:.0f} min)",
             f"- CPU: {run['cpu']}, {cores} cores; memory {run['mem_gib']} GiB; int8/bf16 "
             "dot-product instructions: "
             f"{', '.join(run.get('int8_flags') or []) or 'none (no VNNI or AMX)'}",
             f"- GPU: {run['gpu'] if run['cuda'] else 'no GPU available in this run: CPU only'}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()),
             f"- Data: HTC_DL_OFFLINE={run['env'].get('HTC_DL_OFFLINE') or '(unset)'}, "
             f"HTC_DL_DATA={run['env'].get('HTC_DL_DATA') or '(unset: fastai data folder)'}; "
             "offline data sets already on disk at the start: "
             f"{', '.join(run['cached']) or 'none (the first notebooks paid for writing them)'}",
             f"- Load average (1 min) during the run, sampled every 10 s: min {min(loads):.1f}, "
             f"median {sorted(loads)[len(loads) // 2]:.1f}, max {max(loads):.1f} on {cores} cores"]
    # the run's own kernels use every core, so only a median above the core count means other jobs
    if sorted(loads)[len(loads) // 2] > cores:
        lines.append("- **Timings are noisy**: other jobs were using the CPU during this run "
                     f"(median load above {cores}); treat wall times as upper bounds, "
                     "not as what a quiet machine gives. CPU seconds are less affected.")
    return "\n".join(lines)


MARKDOWN_TITLES = {"memory": "Peak memory of each kernel, online",
                   "classifier_cold_start": "Classifier app cold start",
                   "deploy": "Deployment: one export, every runtime",
                   "latent": "Latent spaces (lesson 6e)",
                   "vision": "Vision beyond classification (lesson 6f)",
                   "attacks": "Adversarial examples (lesson 4b)", "camera": "The web app's camera",
                   "digit_studio": "Digit studio", "text": "Text (lesson 6g)",
                   "review_app": "What does this review say?",
                   "gans": "GANs beside VAEs (lesson 6h)"}


def markdown_section(name, result):
    "A section whose script wrote its own Markdown (bench/<name>.py run()), under a heading."
    title = f"## {MARKDOWN_TITLES.get(name, name)} (`bench/{name}.py`)"
    text = (result or {}).get("markdown")
    # the script's own heading, demoted under the page's title
    if text and text.lstrip().startswith("#"):
        heading, _, body = text.lstrip().partition("\n")
        return f"## {heading.lstrip('#').strip()} (`bench/{name}.py`)\n{body}"
    return f"{title}\n\n" + (text or (result or {}).get("error", "not run"))


# rendered above, from their figures
BUILT_IN = ("notebooks", "imports", "apps", "voila", "precision")


def render(run):
    "RESULTS.md from a run's record (`test-output/bench/run.json`)."
    sec = run["sections"]
    nb_rows = sec.get("notebooks")
    parts = [header_md(run), goals_md(run)]
    parts.append(notebooks_md(nb_rows) if nb_rows
                 else "## 1. Course run time\n\nnot run (BENCH_SECTIONS)")
    parts.append(quality_md(nb_rows) if nb_rows else "## 2. Quality\n\nnot run (BENCH_SECTIONS)")
    parts += [apps_md(sec["apps"], sec["voila"]), imports_md(sec["imports"]),
              precision_md(sec["precision"], run["cuda"])]
    parts += [markdown_section(name, sec[name]) for name in sec if name not in BUILT_IN]
    return "\n\n".join(parts) + "\n"


README_START = "<!-- goals: written by make bench from bench/RESULTS.md -->"
README_END = "<!-- end of goals -->"


def goals_block(results):
    "RESULTS.md's date and CPU lines, then its Goals table, copied from the Markdown `results`."
    lines = results.splitlines()
    if "## Goals" not in lines:
        raise ValueError("the results have no '## Goals' section: write them with render() "
                         "(`python bench/run_all.py --render`)")
    at = lines.index("## Goals")
    ends = [i for i, l in enumerate(lines) if i > at and l.startswith("## ")] + [len(lines)]
    run = [l for l in lines[:at] if l.startswith(("- Date: ", "- CPU: "))]
    return "\n".join(run + [""] + [l for l in lines[at:ends[0]] if l.startswith("|")])


def write_readme_goals(results, readme):
    "Put `goals_block(results)` between `readme`'s goals markers (a temp file, then a rename)."
    readme = Path(readme)
    text = readme.read_bytes().decode()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} needs the lines {README_START!r} and {README_END!r}, in that "
                         "order, where the goals table goes: add them, then run this again")
    text = text[:start + len(README_START)] + "\n\n" + goals_block(results) + "\n\n" + text[end:]
    from htc_dl.data import write_file_atomically
    write_file_atomically(readme, lambda tmp: tmp.write_bytes(text.encode()))
