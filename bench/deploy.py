"""The deployment bundle of lesson 03c (htc_dl.deploy) on each runtime: size on disk, ms per picture
(p50/p95, batch 1, 2 threads) and top-1 agreement with PyTorch eager; and the static web app in
headless Chromium (onnxruntime-web WASM): ms per picture inside the page and the cold-load time
until the model is ready.

Run alone: `.venv/bin/python bench/deploy.py [--json out.json] [--repeats 40]`."""
import argparse, json, math, os, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/"tests"))
THREADS = 2
TARGETS = ("targets: onnxruntime >= 3x faster than PyTorch eager; int8 top-1 agreement >= 98% with "
           "fp32; browser <= 60 ms per picture; page ready <= 3 s")


def percentile(values, q):
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def python_runtimes(work, repeats):
    "Export the bundle and time every Python-side runtime on chelsea (451x300)."
    import numpy as np, torch
    from htc_dl.bundle import bundle_runtimes, export_classifier
    from htc_dl.deploy import (agreement, imagenet_classifier, photo_views, real_photos, time_ms,
                               torch_runtime)
    torch.set_num_threads(THREADS)
    classifier = imagenet_classifier()
    t0 = time.perf_counter(); bundle = export_classifier(classifier, work/"bundle")
    export_s = time.perf_counter() - t0
    photos = real_photos(); views = photo_views(photos); reference = torch_runtime(classifier)
    rows = {}
    for name, (predict, mb) in bundle_runtimes(bundle, classifier, THREADS).items():
        rows[name] = dict(size_mb=mb, **time_ms(predict, photos["chelsea"], repeats),
                          **agreement(reference, predict, views))
    manifest = json.loads((bundle/"manifest.json").read_text())
    return rows, dict(export_s=export_s, n_views=len(views),
                      int8_vs_fp32=manifest["checks"].get("onnxruntime_int8_vs_fp32"))


def browser_runtime(work, repeats, cold_loads=3):
    "Build the web app, serve it on 127.0.0.1 and measure it in headless Chromium."
    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from browser_helpers import free_port, launch_chromium
    from htc_dl.bundle import build_webapp
    from htc_dl.deploy import imagenet_classifier, photo_views, real_photos, torch_runtime
    dist = build_webapp(work/"dist")
    photos = real_photos(); views = photo_views(photos)[: 6 * 6]   # 6 photos x 6 views
    for i, v in enumerate(views): Image.fromarray(v).save(work/f"view{i}.png")
    reference = torch_runtime(imagenet_classifier())
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(dist)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try: urllib.request.urlopen(f"{base}/index.html", timeout=1).close(); break
            except OSError: time.sleep(0.1)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            loads, outside = [], []
            for _ in range(cold_loads):
                context = browser.new_context()
                context.on("request",
                           lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
                page = context.new_page()
                t0 = time.perf_counter(); page.goto(f"{base}/index.html")
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                loads.append(time.perf_counter() - t0)
                threads = page.evaluate("window.htcReady.threads")
                context.close()
            context = browser.new_context(); page = context.new_page()
            page.goto(f"{base}/index.html")
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            def choose(path):
                before = int(page.get_attribute("body", "data-classified") or 0)
                page.set_input_files("#file", str(path))
                page.wait_for_function(f"Number(document.body.dataset.classified || 0) > {before}",
                                       timeout=120_000)
                return page.evaluate("window.htcLast")
            times = [choose(work/"view0.png")["ms"] for _ in range(repeats + 1)][1:]
            same = sum(int(choose(work/f"view{i}.png")["top1"] == int(reference(v).argmax()))
                       for i, v in enumerate(views))
            browser.close()
    finally: server.terminate(); server.wait(10)
    wasm_mb = sum(f.stat().st_size for f in (dist/"ort").iterdir()) / 1e6
    row = dict(size_mb=(dist/"model"/"model.onnx").stat().st_size / 1e6, p50=percentile(times, 0.5),
               p95=percentile(times, 0.95), top1=same / len(views), n=len(views),
               max_gap=float("nan"))
    return row, dict(cold_load_s=loads, threads=threads, runtime_mb=wasm_mb,
                     outside_requests=outside)


def markdown(rows, notes):
    lines = ["## Deployment (lesson 03c): one bundle, five runtimes", "",
             "EfficientNet-Lite0 (ImageNet) with the preprocessing inside the graph; one 451x300 "
             f"photo (chelsea), batch 1, {THREADS} threads in Python, {notes.get('threads', '?')} "
             "in the browser (isolate.js: cross-origin isolated through the page's service "
             f"worker). Agreement: top-1 equal to PyTorch eager on {notes.get('n_views', '?')} "
             "real-photo views (browser: "
             f"{rows.get('browser WASM (onnxruntime-web)', {}).get('n', '?')}). Load average "
             f"{notes['load']:.1f} on {os.cpu_count()} cores while measuring.", "",
             "| runtime | model size (MB) | ms p50 | ms p95 | top-1 = PyTorch | max prob. gap |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        gap = "-" if r.get("max_gap") != r.get("max_gap") else f"{r['max_gap']:.1e}"
        lines.append(f"| {name} | {r['size_mb']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                     f"{r['top1']:.1%} | {gap} |")
    eager, fp32 = rows.get("PyTorch eager"), rows.get("onnxruntime fp32")
    lines.append("")
    if eager and fp32:
        lines.append(f"- onnxruntime fp32 is **{eager['p50'] / fp32['p50']:.1f}x** faster than "
                     f"PyTorch eager (p50); export took {notes['export_s']:.1f} s.")
    if notes.get("int8_vs_fp32"):
        lines.append("- int8 vs fp32 top-1 agreement on the held-out photos (from the bundle's "
                     f"manifest): {notes['int8_vs_fp32']['top1']:.1%} of "
                     f"{notes['int8_vs_fp32']['n']}.")
    if "cold_load_s" in notes:
        loads = notes["cold_load_s"]
        lines.append("- web page cold load until the model is ready: "
                     f"{', '.join(f'{s:.2f}' for s in loads)} s ({len(loads)} fresh browser "
                     f"contexts); onnxruntime-web's WASM files {notes['runtime_mb']:.1f} MB; "
                     f"requests outside 127.0.0.1: {len(notes['outside_requests'])}.")
    if "browser_error" in notes: lines.append(f"- browser: not measured ({notes['browser_error']})")
    lines.append(f"- {TARGETS}.")
    return "\n".join(lines) + "\n"


def run(repeats=40, json_path=None):
    "Measure everything and return the markdown section."
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    rows, notes = python_runtimes(work, repeats)
    try:
        row, more = browser_runtime(work, repeats)
        rows["browser WASM (onnxruntime-web)"] = row; notes.update(more)
    except Exception as e: notes["browser_error"] = f"{type(e).__name__}: {e}"[:300]
    notes["load"] = os.getloadavg()[0]
    if json_path:
        Path(json_path).write_text(json.dumps(dict(rows=rows, notes=notes), indent=1, default=str))
    return dict(markdown=markdown(rows, notes), goals=goals(rows, notes))


def goals(rows, notes):
    """This section's rows of the goals table (a runtime that did not run is reported as not
    measured)."""
    from fresh_process import goal
    out = []
    eager, fp32 = rows.get("PyTorch eager"), rows.get("onnxruntime fp32")
    if eager and fp32:
        speedup = eager["p50"] / fp32["p50"]
        out.append(goal("onnxruntime against PyTorch eager (p50, one photo)", ">= 3x faster",
                        f"{speedup:.1f}x", speedup >= 3))
    int8 = notes.get("int8_vs_fp32")
    if int8:
        out.append(goal("int8 model agrees with fp32 (top-1)", ">= 98%",
                        f"{int8['top1']:.1%} of {int8['n']} photos ({int8_cpu()})",
                        int8["top1"] >= 0.98))
    browser = rows.get("browser WASM (onnxruntime-web)")
    if browser:
        out.append(goal("web app: one photo in the browser (p50)", "<= 60 ms",
                        f"{browser['p50']:.0f} ms", browser["p50"] <= 60))
    if notes.get("cold_load_s"):
        worst = max(notes["cold_load_s"])
        out.append(goal("web app ready after a cold load", "<= 3 s", f"{worst:.2f} s (slowest of "
                        f"{len(notes['cold_load_s'])})", worst <= 3))
    return out


def int8_cpu():
    """Whether this CPU has int8 dot-product instructions (VNNI or AMX), which int8 agreement
    depends on."""
    flags = (set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists()
             else set())
    found = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return "with " + ", ".join(found) if found else "without VNNI or AMX"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json"); parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    print(run(args.repeats, args.json)["markdown"])
