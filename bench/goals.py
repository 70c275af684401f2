"""The goals table at the top of bench/RESULTS.md: each target the project has set, the figure of
this run that decides it, and whether it was met. Sections written by their own scripts bring their
rows (`goals` in what their `run()` returns); the rows for the notebooks, Voila, the apps' handlers
and CI are read here from the run's record."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSON_LIMIT_S = 300        # a lesson in small mode on 2 CPU cores
MEMORY_LIMIT_MIB = 1430     # 1.5 GB: what a Binder kernel may use, leaving room for the server
COLD_START_LIMIT_S = 5      # an app's first widget after opening it
CI_LIMIT_MIN = 45           # `make test` on a fresh clone
CI_TIMES = ROOT / "test-output" / "make-test-seconds.txt"


def row(goal, target, measured, met):
    return dict(goal=goal, target=target, measured=measured, met=met)


def lesson_goals(notebooks):
    "Run time of each lesson and the largest kernel, from the notebook pass (small mode, offline)."
    lessons = [r for r in notebooks if r["notebook"][:2].isdigit() and "wall_s" in r["small"]]
    out = []
    if lessons:
        slowest = max(lessons, key=lambda r: r["small"]["wall_s"])
        wall = slowest["small"]["wall_s"]
        out.append(row("each notebook runs in small mode on this machine",
                       f"<= {LESSON_LIMIT_S // 60} min",
                       f"slowest {wall / 60:.1f} min: {slowest['notebook']}",
                       wall <= LESSON_LIMIT_S))
    peaks = [(r["small"]["binder_peak_mib"], r["notebook"]) for r in notebooks
             if "binder_peak_mib" in r["small"]]
    if peaks:
        peak, name = max(peaks)
        out.append(row("every notebook kernel fits Binder, small mode (offline)",
                       f"<= 1.5 GB ({MEMORY_LIMIT_MIB:,} MiB)", f"largest {peak:,} MiB: {name}",
                       peak <= MEMORY_LIMIT_MIB))
    failed = [r["notebook"] for r in notebooks if r["small"].get("status") not in ("ok", None)]
    out.append(row("every notebook runs to the end (small mode, offline)", "all",
                   f"{len(notebooks) - len(failed)}/{len(notebooks)}"
                   + (f"; not: {', '.join(failed)}" if failed else ""), not failed))
    return out


def voila_goals(voila):
    "The slowest app's first widget after opening it, Voila without preheating."
    rows = [r for r in voila.get("result", []) if "first_render_s" in r]
    if not rows:
        return [row("every app's first widget, no preheating", f"<= {COLD_START_LIMIT_S} s",
                             "not measured: " + voila.get("error", "no app measured"), None)]
    worst = max(rows, key=lambda r: r["first_render_s"])
    missing = len(voila["result"]) - len(rows)
    return [row("every app's first widget, no preheating", f"<= {COLD_START_LIMIT_S} s",
                f"slowest {worst['first_render_s']:.1f} s: {worst['app']}"
                + (f"; {missing} not measured" if missing else ""),
                worst["first_render_s"] <= COLD_START_LIMIT_S and not missing)]


def handler_goals(apps):
    "Each app response that states a target such as '< 200 ms', against its p95."
    out = []
    for r in apps.get("result", []):
        limit = re.fullmatch(r"<\s*(\d+)\s*ms", str(r.get("target", "")).strip())
        if not limit: continue
        what = f"{r['app'].split(' (')[0]}: {r.get('response', '')}"
        if "p95_ms" not in r:
            out.append(row(what, f"< {limit[1]} ms (p95)", r.get("error", "not measured"), None))
        else:
            out.append(row(what, f"< {limit[1]} ms (p95)", f"{r['p95_ms']:.0f} ms",
                           r["p95_ms"] < int(limit[1])))
    return out


def ci_goal(path=CI_TIMES):
    "The last `make test` in this checkout, as its own timing table recorded it."
    if not path.exists(): return row("`make test` (CI) on this machine", f"<= {CI_LIMIT_MIN} min",
                                     "not measured here: `make test` writes "
                                     "test-output/make-test-seconds.txt", None)
    seconds = {parts[0]: int(parts[1])
               for parts in (line.split() for line in path.read_text().splitlines())
               if len(parts) >= 2 and parts[1].isdigit()}
    total = sum(seconds.values())
    failed = "FAILED" in path.read_text()
    return row("`make test` (CI) on this machine", f"<= {CI_LIMIT_MIN} min",
               f"{total / 60:.0f} min, last run in this checkout"
               + ("; it failed" if failed else ""),
               total <= CI_LIMIT_MIN * 60 and not failed)


def gpu_goal(cuda):
    "Full mode and fp16 need a GPU; on a CPU-only machine this says so in one line."
    if cuda: return []
    return [row("full mode and fp16 against fp32 per epoch, peak GPU memory", "measured on a GPU",
                "not run: needs a CUDA GPU (BENCH_FULL=1 make bench on one)", None)]


def collect(run):
    "Every goals row of a run, in the order of RESULTS.md's sections."
    sec = run["sections"]
    out = lesson_goals(sec.get("notebooks") or [])
    out += voila_goals(sec.get("voila", {})) + handler_goals(sec.get("apps", {}))
    for name, result in sec.items():
        if isinstance(result, dict): out += result.get("goals", [])
    return out + gpu_goal(run.get("cuda")) + [ci_goal()]


def goals_md(run):
    "The goals table."
    mark = {True: "yes", False: "**no**", None: "-"}
    lines = ["## Goals", "", "Each target the project has set, and this run's figure for it.", "",
             "| goal | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['target']} | {g['measured']} | {mark[g['met']]} |"
              for g in collect(run)]
    return "\n".join(lines)
