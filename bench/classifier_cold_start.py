"""Cold start of the classifier app: Voila with preheating off (as Binder runs it, inside Jupyter \
Server), driven by
Chromium; seconds from navigation to the first widget, for fresh pages (each starts its own kernel).
Also what the kernel itself spends: importing htc_dl.apps and building the app with its default
model, and whether fastai was imported on the way.

Run alone: `.venv/bin/python bench/classifier_cold_start.py [--n 3]`."""
import argparse, os, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT/"tests")]

KERNEL_SIDE = """
import time, sys
t = time.perf_counter()
from htc_dl.apps import classifier_app
imported = time.perf_counter() - t
app = classifier_app()
print(f"{imported:.2f} {time.perf_counter() - t:.2f} \
{int(any(m.split('.')[0] == 'fastai' for m in sys.modules))} {type(app.classifier).__name__}")
"""


def kernel_side(n):
    """Seconds to import htc_dl.apps and to build the app (import included), in fresh processes;
    whether fastai was imported."""
    rows = []
    for _ in range(n):
        out = subprocess.run([sys.executable, "-c", KERNEL_SIDE], capture_output=True, text=True,
                             cwd=ROOT, timeout=600)
        imported, built, fastai, model = out.stdout.split()[-4:]
        rows.append((float(imported), float(built), fastai == "1", model))
    return rows


def voila_cold(n):
    """Seconds from navigation to the classifier's first widget, Voila without preheating, one fresh
    page (and kernel) each."""
    from browser_helpers import VoilaServer, launch_chromium, open_app, wait_for_text
    from playwright.sync_api import sync_playwright
    times, ready, loads = [], [], []
    with VoilaServer(extra_args=["--preheat_kernel=False"]) as server, sync_playwright() as p:
        browser = launch_chromium(p)
        ctx = browser.new_context()
        warm = ctx.new_page(); open_app(warm, server.url("classifier"), ready=".widget-upload")
        warm.close(run_before_unload=True)  # JS cached, files cached
        for _ in range(n):
            time.sleep(3)
            page = ctx.new_page()
            loads.append(os.getloadavg()[0])
            times.append(open_app(page, server.url("classifier"), ready=".widget-upload"))
            ready.append(times[-1] + wait_for_text(page, r"Upload a picture: it is classified "
                                                         r"at once", timeout=120)[0])
            page.close(run_before_unload=True)
        browser.close()
    return times, ready, loads


def run(n=3):
    "The markdown section: cold-start table for the classifier app."
    kernel = kernel_side(n)
    times, ready, loads = voila_cold(n)
    lines = ["### Classifier app: cold start without preheating", "",
             f"On {os.cpu_count()} cores; 1-minute load average during the Voila runs: "
             f"{', '.join(f'{l:.1f}' for l in loads)}.", "",
             "| measure | runs (s) | median (s) |", "|---|---|---|",
             f"| kernel: import htc_dl.apps | {', '.join(f'{k[0]:.2f}' for k in kernel)} | "
             f"{statistics.median(k[0] for k in kernel):.2f} |",
             f"| kernel: import + build the app with its default model ({kernel[0][3]}) | "
             f"{', '.join(f'{k[1]:.2f}' for k in kernel)} | "
             f"{statistics.median(k[1] for k in kernel):.2f} |",
             "| Voila, no preheating: navigation to first widget (Chromium) | "
             f"{', '.join(f'{t:.2f}' for t in times)} | {statistics.median(times):.2f} |",
             "| Voila, no preheating: navigation until the model is loaded and the app classifies "
             f"| {', '.join(f'{t:.2f}' for t in ready)} | {statistics.median(ready):.2f} |",
             "",
             "fastai imported by the app's kernel: "
             f"{'yes' if any(k[2] for k in kernel) else 'no'}."]
    worst = max(times)
    return dict(markdown="\n".join(lines), goals=[dict(
        goal="classifier app without preheating: first widget", target="<= 5 s",
        measured=f"{worst:.2f} s (slowest of {n}; model ready {max(ready):.2f} s)",
        met=worst <= 5)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3)
    print(run(parser.parse_args().n)["markdown"])
