"""Drive the Voila apps in a real Chromium: start Voila on a free localhost port, open an app, wait
for its widgets, upload files, move sliders, time each step, save screenshots. Plain functions,
reused by tests/test_browser.py, tests/make_thumbnails.py and the benchmarks.

Facts this relies on (see /work/shared/FIELD_NOTES.md): Debian's chromium at /usr/bin/chromium
driven by the PyPI `playwright` package (never `playwright install`); every GET of a notebook starts
a kernel, so readiness is polled on a static file; ipywidgets 8 uploads go through a file chooser,
not `set_input_files`.
"""
import contextlib, json, os, re, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# override only to try drivers on other apps
APPS_DIR = Path(os.environ.get("HTC_DL_APPS_DIR") or ROOT/"nbs"/"apps")
SCREENSHOTS = ROOT/"test-output"/"screenshots"
VOILA = Path(sys.executable).parent/"voila"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
WIDGET = (".jupyter-widgets.widget-box, .jupyter-widgets.widget-inline-hbox, .widget-upload, "
          ".widget-slider, .widget-button")


def require_chromium():
    """playwright's `sync_playwright`, after failing the calling test module with the fix if
    Debian's chromium is missing."""
    import pytest
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)",
                    pytrace=False)
    return pytest.importorskip("playwright.sync_api").sync_playwright


def app_names(apps_dir=APPS_DIR):
    "The apps Voila serves: every notebook in `apps_dir` except the gallery (index)."
    return sorted(p.stem for p in Path(apps_dir).glob("*.ipynb") if p.stem != "index")


def voila_settings(apps_dir=APPS_DIR):
    "The settings `make start` uses, from `apps_dir`/voila.json."
    return json.loads((Path(apps_dir)/"voila.json").read_text())


def free_port():
    "A TCP port on 127.0.0.1 that nothing listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_module(module, *args, timeout=600):
    """Run `python -m MODULE ARGS` with this checkout's htc_dl first on the path; the finished
    process."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": path}, timeout=timeout)


@contextlib.contextmanager
def static_server(folder, ready="index.html"):
    """Serve `folder` with `python -m http.server` on 127.0.0.1; yields the base URL once `ready`
    answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/{ready}", timeout=1): break
            except OSError: time.sleep(0.1)
        yield base
    finally:
        proc.terminate(); proc.wait(10)


class VoilaServer:
    """Voila serving `apps_dir` the way `make start` does (cwd = apps_dir, so its voila.json
    applies), on a free port."""
    def __init__(self, apps_dir=APPS_DIR, port=None, extra_args=(), env=None, log_path=None):
        self.apps_dir, self.port = Path(apps_dir), port or free_port()
        self.log_path = Path(log_path or ROOT/"test-output"/f"voila-{self.port}.log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cmd = [str(VOILA), "--no-browser", f"--port={self.port}", *extra_args, "."]
        # the kernels import this checkout's htc_dl even where it is not installed
        # (make install installs it editable)
        self.env = {**os.environ,
                    "PYTHONPATH": os.pathsep.join(
                        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
                    **(env or {})}
        self.proc, self.started_at, self.up_after = None, None, None

    @property
    def base_url(self): return f"http://127.0.0.1:{self.port}"

    def url(self, app): return f"{self.base_url}/voila/render/{app}.ipynb"

    def start(self, timeout=60):
        "Launch Voila and return once it answers on its port (seconds from launch to answering)."
        self._log = open(self.log_path, "w")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, cwd=self.apps_dir, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            try:   # a static file: requesting a notebook would start a kernel
                with urllib.request.urlopen(f"{self.base_url}/voila/static/favicon.ico",
                                            timeout=2) as r:
                    if r.status == 200:
                        self.up_after = time.perf_counter() - self.started_at
                        return self.up_after
            except OSError: time.sleep(0.2)
        raise TimeoutError(f"voila did not answer on port {self.port} within {timeout}s:\n"
                           f"{self.log()[-3000:]}")

    def log(self): return self.log_path.read_text() if self.log_path.exists() else ""

    def kernels(self):
        "psutil processes of the kernels Voila started and that still run."
        import psutil
        found = []
        for c in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if c.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(c.cmdline()):
                    found.append(c)
            except psutil.Error: pass   # ended while we looked
        return found

    def listening_addresses(self):
        "The (ip, port) pairs the Voila process listens on."
        import psutil
        return sorted({(c.laddr.ip, c.laddr.port)
                       for c in psutil.Process(self.proc.pid).net_connections("tcp")
                       if c.status == psutil.CONN_LISTEN})

    def executed_cells(self, kernel, timeout=2.0):
        """How many cells `kernel` (a psutil process) has executed, or None if it is still busy or
        not answering. Asked over the kernel's own shell channel, which answers only once the cell
        it is running has finished."""
        from jupyter_client import BlockingKernelClient
        cmd = kernel.cmdline()
        client = BlockingKernelClient(connection_file=cmd[cmd.index("-f") + 1])
        client.load_connection_file()
        client.start_channels(iopub=False, stdin=False, hb=False, control=False)
        try:
            msg_id = client.execute("", silent=True, store_history=False,
                                    user_expressions={"n": "len(In) - 1"})
            deadline = time.perf_counter() + timeout
            while time.perf_counter() < deadline:
                try: reply = client.get_shell_msg(timeout=max(deadline - time.perf_counter(), 0.01))
                except Exception: return None   # no reply yet: still executing
                if reply["parent_header"].get("msg_id") == msg_id:
                    value = reply["content"].get("user_expressions", {}).get("n", {})
                    return int(value["data"]["text/plain"]) if value.get("status") == "ok" else None
            return None
        finally: client.stop_channels()

    def wait_until_kernels_idle(self, count, timeout=300, settle=1.5):
        """Wait until at least `count` kernels run and every one has executed its notebook and is
        free: with preheating, the pool is warm. `settle` first gives Voila time to start refilling
        its pool (it waits `fill_delay` after a kernel is taken). Returns seconds waited."""
        t0 = time.perf_counter()
        time.sleep(settle)
        last = {}
        while time.perf_counter() - t0 < timeout:
            ks = self.kernels()
            if len(ks) >= count:
                try: now = {k.pid: self.executed_cells(k) for k in ks}
                except Exception: now = {}
                # ready: every kernel answered, has run at least one cell, and ran no more since the
                # last look
                if now and all(n for n in now.values()) and now == last:
                    return time.perf_counter() - t0
                last = now
            time.sleep(0.5)
        raise TimeoutError(f"{len(self.kernels())} kernels, not {count} with their notebooks run, "
                           f"after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # voila and the kernels it started (its own session)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try: self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait(5)
        if getattr(self, "_log", None): self._log.close()

    def __enter__(self): self.start(); return self
    def __exit__(self, *exc): self.stop()


def launch_chromium(playwright):
    "Debian's chromium, headless, with nothing reaching out to the network on its own."
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


ERROR_OUTPUT = "[data-mime-type='application/vnd.jupyter.stderr']"


def open_app(page, url, ready=WIDGET, timeout=120):
    """Navigate to an app and wait until `ready` is visible; seconds from navigation to the first
    widget drawn. Raises with the page's text if the notebook shows an error instead."""
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout*1000)
    page.locator(f"{ready}, {ERROR_OUTPUT}").first.wait_for(state="visible", timeout=timeout*1000)
    seconds = time.perf_counter() - t0
    if page.locator(ERROR_OUTPUT).count():
        raise AssertionError(f"{url} shows an error instead of its widgets:\n"
                             f"{page.locator('body').inner_text()[:3000]}")
    return seconds


def page_streamed_s(page):
    """Seconds from navigation until the server finished sending the page (with preheating, Voila's
    HTML is ready at once)."""
    return page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd") / 1000


def load_scaled_budget(seconds, cap=2.0):
    """A time budget for an idle machine, stretched by how oversubscribed the CPUs are right now
    (1-minute load average per core), at most `cap` times: other jobs on a shared 2-core machine
    slow the browser down too."""
    return seconds * min(cap, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))


def wait_for_change(page, locator, before, timeout=30):
    """Wait until `locator` (a Locator or a selector; its first match) reads something other than
    `before`, and not nothing; returns (seconds, new text)."""
    loc = page.locator(locator).first if isinstance(locator, str) else locator
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try: now = loc.inner_text(timeout=1000)
        except Exception: now = None
        if now and now != before: return time.perf_counter() - t0, now
        page.wait_for_timeout(20)
    raise TimeoutError(f"{locator} still reads {before!r} after {timeout}s")


def wait_for_text(page, pattern, timeout=30, locator="body"):
    "Wait until the text of `locator` matches the regex `pattern`; returns (seconds, the match)."
    t0, rx = time.perf_counter(), re.compile(pattern, re.I | re.S)
    while time.perf_counter() - t0 < timeout:
        m = rx.search(page.locator(locator).first.inner_text())
        if m: return time.perf_counter() - t0, m
        page.wait_for_timeout(20)
    raise TimeoutError(f"no text matching {pattern!r} after {timeout}s; the page reads:\n"
                       f"{page.locator(locator).first.inner_text()[:2000]}")


def upload(page, path, nth=0):
    """Upload `path` through the nth FileUpload widget (ipywidgets 8 keeps its file input out of the
    DOM)."""
    with page.expect_file_chooser() as chooser:
        page.locator(".widget-upload").nth(nth).click()
    chooser.value.set_files(str(path))


def press_slider(page, nth=0, key="ArrowRight", times=1):
    """Focus the nth slider's handle and press `key` `times` times (each press is one step of the
    slider)."""
    handle = page.locator(".widget-slider .noUi-handle").nth(nth)
    handle.click()
    for _ in range(times): handle.press(key)


def slider_readout(page, nth=0):
    """The value the nth slider shows next to it (ipywidgets writes negatives with a Unicode minus;
    this returns '-')."""
    return (page.locator(".widget-slider .widget-readout").nth(nth).inner_text()
            .replace("\u2212", "-"))


def screenshot(page, name, full_page=True):
    "Save a PNG of the page under test-output/screenshots/ and return its path."
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS/f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def widget_screenshot(page, name):
    """Save a PNG of the app's outermost widget only (no prose, no logs) as
    test-output/screenshots/<name>-app.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS/f"{name}-app.png"
    page.locator(".jupyter-widgets.widget-container, .jupyter-widgets.widget-box").first.screenshot(
        path=str(path))
    return path


def track_websockets(page):
    """Record the page's websockets (call before navigating):
    {'opened': [url, ...], 'closed': [url, ...]}."""
    seen = {"opened": [], "closed": []}
    def watch(ws):
        seen["opened"].append(ws.url)
        ws.on("close", lambda w: seen["closed"].append(w.url))
    page.on("websocket", watch)
    return seen


def summary(times):
    "min / median / max of a list of seconds, as text."
    s = sorted(times)
    return f"n={len(s)} min {s[0]:.2f}s median {s[len(s)//2]:.2f}s max {s[-1]:.2f}s" if s else "n=0"


def write_y4m(frames, path, fps=30):
    """Write RGB uint8 frames (all one size, even sides) as a Y4M video: I420 in BT.601 limited
    range (Y 16-235), as Chromium's fake camera reads it (`fake_camera_args(path)`) and shows it as
    RGB again."""
    import numpy as np
    from PIL import Image
    height, width = frames[0].shape[:2]
    half = (width // 2, height // 2)   # I420: chroma at half the size each way
    limited = lambda plane, low, span: \
        (low + np.asarray(plane, float) * span / 255).round().astype(np.uint8)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420\n".encode())
        for frame in frames:
            y, cb, cr = Image.fromarray(frame).convert("YCbCr").split()   # full range (JPEG's)
            chroma = [limited(c.resize(half, Image.BOX), 16, 224) for c in (cb, cr)]
            f.write(b"FRAME\n" + b"".join(p.tobytes() for p in [limited(y, 16, 219), *chroma]))
    return Path(path)


def fake_camera_args(y4m):
    """Chromium flags for a fake camera that plays `y4m` in a loop. A page gets it where its context
    has the permission (`new_context(permissions=["camera"])`), else getUserMedia fails with
    NotAllowedError."""
    return ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}"]


def photo_video(names, path, seconds_each=1.5, fps=30, size=(400, 300)):
    """A Y4M at `path` showing scikit-image's photos `names` one after the other, each cropped to
    `size` and held `seconds_each`; returns (path, {name: the RGB frame})."""
    import numpy as np
    from PIL import Image
    from htc_dl.deploy import real_photos
    frames = {}
    for name, a in real_photos(names).items():
        im = Image.fromarray(a)
        scale = max(size[0] / im.width, size[1] / im.height)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
        left, top = (im.width - size[0]) // 2, (im.height - size[1]) // 2
        frames[name] = np.asarray(im.crop((left, top, left + size[0], top + size[1])))
    n = round(seconds_each * fps)
    return write_y4m([f for f in frames.values() for _ in range(n)], path, fps), frames
