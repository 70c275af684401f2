"""The web app's camera, measured in headless Chromium with a fake camera (30 frames per second of
real photos: chelsea, then coffee): answers per second with onnxruntime-web on 2 threads (the page
cross-origin isolated by its service worker) and on 1 (service workers blocked), the ms per camera
answer, the ms per uploaded photo on the same page, and the CPU the whole browser used meanwhile.

Run alone: `.venv/bin/python bench/camera.py [--json out.json]`; `run()` returns the section."""
import os, shutil, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

from fresh_process import ROOT, goal, main, section

TARGET = 12   # answers per second on 2 threads


def browser_cpu_s():
    "{pid: user + system CPU seconds} of this process's Chromium processes."
    import psutil
    found = {}
    for c in psutil.Process().children(recursive=True):
        try:
            if "chrom" in c.name(): found[c.pid] = sum(c.cpu_times()[:2])
        except psutil.Error: pass   # ended while we looked
    return found


def upload_ms(page, photo, repeats):
    "The page's own ms per upload of `photo` (the first one left out)."
    times = []
    for _ in range(repeats + 1):
        before = int(page.get_attribute("body", "data-classified") or 0)
        page.set_input_files("#file", str(photo))
        page.wait_for_function(f"Number(document.body.dataset.classified || 0) > {before}",
                               timeout=120_000)
        times.append(page.evaluate("window.htcLast.ms"))
    return times[1:]


def camera_run(page, seconds, warm_s=2):
    "Start the camera, let it warm up, then count its answers for `seconds`."
    page.click("#camera-start")
    page.wait_for_function("(window.htcCamera || {}).answers > 0", timeout=120_000)
    page.wait_for_timeout(warm_s * 1000)
    state = "({n: window.htcCamera.answers, t: performance.now(), ms: window.htcCamera.ms})"
    cpu0, first = browser_cpu_s(), page.evaluate(state)
    seen, t0 = {}, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        now = page.evaluate(state)
        seen[now["n"]] = now["ms"]
        page.wait_for_timeout(30)
    last, cpu1 = page.evaluate(state), browser_cpu_s()
    wall = (last["t"] - first["t"]) / 1000
    answers = last["n"] - first["n"]
    cpu = sum(s - cpu0.get(pid, 0) for pid, s in cpu1.items())
    ms = sorted(seen.values())
    return dict(per_second=answers / wall, answers=answers, wall_s=wall, ms_p50=ms[len(ms) // 2],
                browser_cpu_s=cpu, shown=page.inner_text("#timing"))


def measure(seconds=10, uploads=15):
    "Both thread counts, in this process's own Chromium."
    sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/"tests"))
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, fake_camera_args, free_port, photo_video
    from htc_dl.bundle import build_webapp
    from htc_dl.deploy import real_photos
    work = Path(tempfile.mkdtemp(prefix="bench-camera-"))
    dist = build_webapp(work/"dist")
    y4m, frames = photo_video(("chelsea", "coffee"), work/"camera.y4m", seconds_each=2, fps=30)
    photo = work/"chelsea.png"
    Image.fromarray(real_photos(("chelsea",))["chelsea"]).save(photo)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(dist)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/index.html"
    out = dict(frame=f"{frames['chelsea'].shape[1]}x{frames['chelsea'].shape[0]}", camera_fps=30,
               cores=os.cpu_count(), runs={})
    try:
        for _ in range(100):
            try: urllib.request.urlopen(base, timeout=1).close(); break
            except OSError: time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=CHROMIUM_ARGS + fake_camera_args(y4m))
            for workers in ("allow", "block"):   # blocked: not isolated, so one thread
                context = browser.new_context(permissions=["camera"], service_workers=workers)
                page = context.new_page()
                page.goto(base)
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                threads = page.evaluate("window.htcReady.threads")
                load0 = os.getloadavg()[0]
                photo_ms = sorted(upload_ms(page, photo, uploads))
                run = camera_run(page, seconds)
                out["runs"][threads] = dict(run, photo_ms_p50=photo_ms[len(photo_ms) // 2],
                                            load=(load0 + os.getloadavg()[0]) / 2)
                context.close()
            browser.close()
    finally:
        server.terminate(); server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return out


def render(m):
    "The Markdown section for bench/RESULTS.md."
    rows = []
    for threads, r in sorted(m["runs"].items(), key=lambda kv: -int(kv[0])):
        met = ("yes" if r["per_second"] >= TARGET else "**no**") if int(threads) == 2 else "-"
        cpu_ms = 1000 * r["browser_cpu_s"] / max(r["answers"], 1)
        rows.append(f"| {threads} | {r['per_second']:.1f} ({r['answers']} in {r['wall_s']:.1f} s) "
                    f"| {r['ms_p50']:.0f} | {r['photo_ms_p50']:.0f} "
                    f"| {r['browser_cpu_s'] / r['wall_s']:.2f} | {cpu_ms:.0f} | {r['load']:.1f} "
                    f"| {met} |")
    return ("## The web app's camera (onnxruntime-web in headless Chromium)\n\n"
            f"A fake camera plays {m['frame']} frames at {m['camera_fps']} per second (chelsea, "
            "then coffee); the page classifies one frame at a time, the next only once the last "
            f"answer is in. Target: >= {TARGET} answers per second on 2 threads. Wall times "
            f"stretch with the machine's load ({m['cores']} cores; the 1-minute load average is in "
            "the table), CPU times much less. The browser's CPU includes decoding and drawing the "
            "video.\n\n"
            "| threads | camera: answers per second | ms per camera answer (p50) | "
            "ms per uploaded photo (p50, chelsea 451x300) | CPU cores used by Chromium | "
            "Chromium CPU ms per answer | load average | meets the target |\n"
            "|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def goals(m):
    "This section's row of the goals table."
    r = m["runs"].get("2") or m["runs"].get(2)
    name, target = "web app camera, 2 threads", f">= {TARGET} answers/s"
    if r is None: return [goal(name, target, "not measured", False)]
    return [goal(name, target, f"{r['per_second']:.1f} answers/s (load {r['load']:.1f})",
                 r["per_second"] >= TARGET)]


def run(timeout=600):
    "Measure in a fresh interpreter: the section and its goals."
    return section(__file__, "The web app's camera", render, timeout, goals)


if __name__ == "__main__":
    main(__file__, __doc__, measure, render)
