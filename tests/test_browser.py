"""Every app in nbs/apps, served by Voila the way `make start` serves it, driven in a real Chromium.

One Voila for the module, started from nbs/apps with its voila.json (localhost only, sources
stripped, one preheated kernel per notebook, a server-side limit on websocket messages). Each app
has a driver below that uses it like a learner and asserts what the page shows; an app without a
driver fails. Timings (cold and preheated first render, each app's response) are printed at the end
and written to test-output/.
"""
import io, json, os, re, statistics, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser_helpers import (require_chromium, ROOT, VoilaServer, app_names, launch_chromium,
                             load_scaled_budget, open_app, page_streamed_s, press_slider,
                             screenshot, slider_readout, widget_screenshot, track_websockets,
                             upload, voila_settings, wait_for_change, wait_for_text)

APPS = app_names()
# A preheated app renders in about 1.5 s on a quiet 2-core machine; `bench/voila_start.py --preheat`
# measures it. This guard catches a regression (an app that builds its model before its first
# widget, say) with a looser budget that a busy CI runner still meets: issue 13's 5 s ceiling for a
# cold start. Set it to 2 to hold a quiet machine to 2 s.
# preheated first render, once the server is up
RENDER_BUDGET_S = float(os.environ.get("HTC_DL_RENDER_BUDGET_S", "5.0"))
TIMINGS = {"first_render_s": {}, "page_streamed_s": {}, "response_s": {}, "cold": {}, "server": {},
           "load_average": []}

sync_playwright = require_chromium()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real and broken uploads: two photos, a text file named .png, a truncated JPEG, a 60-megapixel
    JPEG, an oversized file."""
    from skimage import data
    d = tmp_path_factory.mktemp("uploads")
    Image.fromarray(data.chelsea()).save(d/"cat.jpg", quality=90)
    Image.fromarray(data.coffee()).save(d/"coffee.jpg", quality=90)
    (d/"notes.png").write_text("These are my notes, not a picture.\n" * 20)
    (d/"truncated.jpg").write_bytes((d/"cat.jpg").read_bytes()[: (d/"cat.jpg").stat().st_size // 3])
    small = np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    Image.fromarray(small).resize((10_000, 6_000), Image.BILINEAR).save(d/"60mp.jpg", quality=70)
    # tiny on disk, 180 MB decoded
    Image.new("RGB", (10_000, 6_000), (200, 150, 90)).save(d/"60mp.png")
    limit = voila_settings()["Voila"]["tornado_settings"]["htc_dl_max_upload_bytes"]
    (d/"oversized.jpg").write_bytes((d/"cat.jpg").read_bytes() + os.urandom(limit + 2**20))
    return d


@pytest.fixture(scope="module")
def voila(request):
    """Voila on a free localhost port, preheated from nbs/apps/voila.json; waits until every pooled
    kernel is idle."""
    server = VoilaServer(env={"HTC_DL_SMALL": "1"})
    up = server.start()
    # one kernel per app and one for the gallery; on a fresh clone the classifier first trains its
    # model (minutes)
    warm = server.wait_until_kernels_idle(count=len(APPS) + 1, timeout=900)
    TIMINGS["server"] |= {"answers_after_s": up, "pool_warm_after_s": up + warm}
    TIMINGS["kernel_memory_mb"] = sorted(round(k.memory_info().rss / 2**20)
                                         for k in server.kernels())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser, voila):
    """One browser profile for the module, like a learner's: it opens the gallery first, which
    caches Voila's JavaScript."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    page = ctx.new_page()
    TIMINGS["first_render_s"]["index (gallery), browser cache empty"] = \
        open_app(page, f"{voila.base_url}/voila/render/index.ipynb", ready=".htc-gallery")
    page.close(run_before_unload=True)
    voila.wait_until_kernels_idle(count=len(APPS) + 1)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    p = context.new_page()
    yield p
    p.close(run_before_unload=True)   # the page asks Voila to shut its kernel down


@pytest.fixture(scope="module", autouse=True)
def report(request):
    "Print the timings after the module and keep them in test-output/browser-timings.json."
    yield
    out = ROOT/"test-output"/"browser-timings.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(TIMINGS, indent=1))
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    # shown in `make test`'s output, not swallowed by pytest's capture
    with capture.global_and_fixture_disabled():
        _print_timings(tr.write_line if tr else print)


def _print_timings(say):
    say("")
    say("Voila in Chromium (seconds):")
    for k, v in TIMINGS["server"].items(): say(f"  server {k}: {v:.1f}")
    if TIMINGS.get("kernel_memory_mb"):
        say(f"  preheated kernels' memory (MB, one per notebook): {TIMINGS['kernel_memory_mb']}")
    for k, v in TIMINGS["cold"].items(): say(f"  cold (no preheating) {k}: {v:.2f}")
    for app, t in TIMINGS["first_render_s"].items():
        streamed = TIMINGS["page_streamed_s"].get(app)
        say(f"  preheated first render {app}: {t:.2f}"
            + (f" (page streamed by the server in {streamed:.2f})" if streamed else ""))
    if TIMINGS["load_average"]:
        say("  (1-minute load average meanwhile: "
            f"{statistics.median(TIMINGS['load_average']):.1f} on {os.cpu_count()} cores)")
    for app, steps in TIMINGS["response_s"].items():
        say(f"  {app} response: "
            + ", ".join(f"{k} {statistics.median(v):.2f} (n={len(v)})" for k, v in steps.items()))


def record(app, step, seconds):
    TIMINGS["response_s"].setdefault(app, {}).setdefault(step, []).append(seconds)


# ---------------------------------------------------------------- the server

def test_voila_listens_on_localhost_only_with_sources_stripped_and_a_message_size_limit(voila):
    addresses = voila.listening_addresses()
    assert addresses and {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses
    settings = voila_settings()
    assert settings["VoilaConfiguration"]["strip_sources"] is True
    assert settings["VoilaConfiguration"]["preheat_kernel"] is True
    limits = settings["Voila"]["tornado_settings"]
    assert 1_000_000 <= limits["htc_dl_max_upload_bytes"] < limits["websocket_max_message_size"] \
        <= 64 * 2**20
    assert settings["Voila"]["kernel_websocket_connection_class"] == \
        "htc_dl.serving.AppKernelConnection"
    assert "Kernel pool of" in voila.log(), "the pool of preheated kernels was not filled"


def test_page_cannot_make_the_kernel_run_code_only_widget_messages_pass(voila, page, tmp_path):
    """A page (or anyone on localhost) sending an execute_request over the kernel websocket gets
    nothing run."""
    proof = tmp_path/"ran.txt"
    open_app(page, f"{voila.base_url}/voila/render/index.ipynb", ready=".htc-gallery")
    replies = page.evaluate("""async (code) => {
        const cfg = JSON.parse(document.getElementById('jupyter-config-data').textContent);
        const ws = new WebSocket(\
`ws://${location.host}/api/kernels/${cfg.kernelId}/channels?session_id=probe`);
        await new Promise((ok, no) => { ws.onopen = ok; ws.onerror = no; });
        const seen = [];
        ws.onmessage = e => { try { seen.push(JSON.parse(e.data).header.msg_type) } \
catch (err) { seen.push('binary') } };
        const msg = (type, content) => JSON.stringify({channel: 'shell', buffers: [], \
metadata: {}, parent_header: {},
            header: {msg_id: type + Math.random(), msg_type: type, session: 'probe', \
username: '', version: '5.3',
                     date: new Date().toISOString()}, content});
        ws.send(msg('execute_request', {code, silent: false, store_history: false, \
user_expressions: {},
                                        allow_stdin: false, stop_on_error: true}));
        ws.send(msg('kernel_info_request', {}));
        await new Promise(ok => setTimeout(ok, 3000));
        ws.close();
        return seen;
    }""", f"open({str(proof)!r}, 'w').write('the page ran code')")
    assert "kernel_info_reply" in replies, ("the probe never reached the kernel, so it proves "
                                            f"nothing: {replies}")
    assert "execute_reply" not in replies and "execute_input" not in replies, replies
    time.sleep(0.5)
    assert not proof.exists(), "Voila let the page execute code in the kernel"


# ---------------------------------------------------------------- the gallery

def test_gallery_lists_every_app_with_a_description_and_a_thumbnail_and_opens_them(voila, page):
    t = open_app(page, f"{voila.base_url}/voila/render/index.ipynb", ready=".htc-gallery")
    TIMINGS["first_render_s"]["index (gallery), cached"] = t
    cards = page.locator("a.htc-app")
    assert cards.count() == len(APPS), f"{cards.count()} cards for {len(APPS)} apps: {APPS}"
    for i, app in enumerate(APPS):
        card = cards.nth(i)
        assert card.get_attribute("href") == f"{app}.ipynb"
        line = card.locator(".htc-app-description").inner_text()
        assert len(line) > 15 and line != "No description yet.", f"{app}: {line!r}"
        size = card.locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert 100 <= size[0] <= 480 and 60 <= size[1] <= 400, f"{app} thumbnail is {size}"
    screenshot(page, "index")
    # a card really opens its app in Voila (in a new tab: JupyterLab's renderer gives links
    # target=_blank)
    if APPS:
        with page.expect_popup() as popup:
            cards.nth(0).click()
        app_page = popup.value
        app_page.wait_for_url(re.compile(rf"/voila/render/{APPS[0]}\.ipynb$"), wait_until="commit")
        app_page.locator(".jupyter-widgets").first.wait_for(state="visible", timeout=120_000)
        app_page.close(run_before_unload=True)


# ---------------------------------------------------------------- one driver per app

PERCENT = r"\d+(\.\d+)?\s*%"


def drive_classifier(page, app, files):
    """Upload the real cat photo, then coffee: the cat gets a cat answer, the coffee "not a cat or a
    dog", each with percentages; then "Wrong? Pick the right breed" records a correction and says
    so."""
    result = page.locator(".widget-html").nth(1)   # the header is the first
    # the model loads behind the page
    wait_for_text(page, r"Upload a picture: it is classified at once", timeout=120)
    before = result.inner_text()
    for photo, expected in [("cat.jpg", r"a cat|Egyptian Mau|Persian|Siamese|most likely"),
                            ("coffee.jpg", r"does not look like a cat or a dog "
                                           r"\(the model sees: \w+|most likely")]:
        t0 = time.perf_counter(); upload(page, files/photo)
        _, text = wait_for_change(page, result, before, timeout=60)
        record(app, "classify one photo", time.perf_counter() - t0)
        assert (photo in text and re.search(expected, text)
                and len(re.findall(PERCENT, text)) >= 2), text
        before = text
    page.locator(".widget-dropdown select").select_option(index=1)
    feedback = page.locator(".widget-html").last
    before = feedback.inner_text()   # read first: the answer can arrive before a later read
    t0 = time.perf_counter(); page.get_by_role("button", name="Record correction").click()
    _, said = wait_for_change(page, feedback, before, timeout=30)
    record(app, "record a correction", time.perf_counter() - t0)
    m = re.search(r"Recorded: coffee\.jpg is a (\w+) .* Corrections in (\S+): \d+;", said, re.S)
    assert m, said
    from htc_dl.feedback import record_files   # leave the learner's journal as it was
    newest = max(record_files(m.group(2)), key=lambda f: f.stat().st_mtime)
    assert json.loads(newest.read_text())["label"] == m.group(1)
    newest.unlink()


def _wait_for_new_picture(page, img, before, timeout=30):
    """Wait until an ipywidgets Image shows a new picture (each redraw gets a new blob URL); seconds
    waited."""
    t0 = time.perf_counter()
    while img.get_attribute("src") == before:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the picture did not change in {timeout}s")
        page.wait_for_timeout(10)
    return time.perf_counter() - t0


def drive_gradient_descent(page, app, files):
    """Nudge the start (redraws), switch to the bowl, push the learning rate to its top (the app
    says it diverged) and back."""
    pictures = page.locator(".widget-image")
    assert pictures.count() == 2, "a landscape and a loss plot"
    message = page.locator(".widget-html", has_text=re.compile(
        r"^(Reached|Stuck|Still|Shaken|Diverged|The loss went)")).first
    for _ in range(3):   # each slider step redraws the path and the loss plot
        before = pictures.first.get_attribute("src")
        t0 = time.perf_counter()
        press_slider(page, 0, "ArrowLeft")
        _wait_for_new_picture(page, pictures.first, before)
        record(app, "redraw after a slider step", time.perf_counter() - t0)
    before, text = pictures.first.get_attribute("src"), message.inner_text()
    page.locator(".widget-dropdown select").first.select_option("bowl")
    _wait_for_new_picture(page, pictures.first, before)
    # the bumpy landscape's local minimum is gone: a new message
    _, text = wait_for_change(page, message, text)
    lr = 2   # sliders: start weight 1, start weight 2, learning rate, steps, noise, seed
    press_slider(page, lr, "End")
    _, text = wait_for_change(page, message, text)
    assert slider_readout(page, lr) == "2.000"
    assert (re.search(r"Diverged at step \d+.*Lower the learning rate", text, re.S)
            and "nan" not in text.lower()), text
    screenshot(page, "gradient_descent-diverged")
    press_slider(page, lr, "Home")
    _, text = wait_for_change(page, message, text)
    assert "Diverged" not in text, text


def drive_recommender(page, app, files):
    """Drag a taste slider to each end: the top-10 table follows; then look up a known user, an
    unknown one, a known one."""
    table = page.locator(".widget-html:has(table)").first   # the New user tab's recommendations
    assert table.locator("tr").count() == 11, table.inner_text()   # a header and the top 10
    before = table.inner_text()
    for key, readout in [("End", "3.0"), ("Home", "-3.0"), ("End", "3.0")]:
        t0 = time.perf_counter()
        press_slider(page, 0, key)
        _, now = wait_for_change(page, table, before)
        record(app, "slider move", time.perf_counter() - t0)
        assert slider_readout(page, 0) == readout
        assert (table.locator("tr").count() == 11
                and len(re.findall(r"\b\d\.\d\d\b", now)) >= 10), now
        before = now
    page.locator(".lm-TabBar-tab", has_text="Existing user").click()
    box = page.locator(".widget-text input").first
    known = box.get_attribute("placeholder").split()[-1]   # "a user id, e.g. 1"
    for user, expected in [(known, rf"Recommended for user {known}\b"),
                           ("99999", r"'99999' is not in the model"),
                           (known, rf"Recommended for user {known}\b")]:
        t0 = time.perf_counter()
        box.fill(user); box.press("Enter")
        wait_for_text(page, expected, timeout=30)
        record(app, "look up a user", time.perf_counter() - t0)
    page.locator(".lm-TabBar-tab", has_text="New user").click()


def drive_multilabel_threshold(page, app, files):
    """Step the threshold slider to the next value, the top and the bottom: the summary and the
    per-label table follow, no error."""
    summary = page.locator(".widget-html", has_text="accuracy_multi at").first
    before = summary.inner_text()
    assert "accuracy_multi at 0.50" in before, before
    for key, readout in [("ArrowRight", "0.55"), ("End", "0.95"), ("Home", "0.05")]:
        t0 = time.perf_counter()
        press_slider(page, 0, key)
        _, now = wait_for_change(page, summary, before)
        record(app, "threshold step -> per-label table and captions", time.perf_counter() - t0)
        assert slider_readout(page, 0) == readout and f"accuracy_multi at {readout}" in now, now
        before = now
    assert (page.locator(".widget-html table tr").count() >= 3
            and page.locator(".widget-image").count() == 12)
    assert not page.get_by_text("Something went wrong").count()


def drive_slider(page, app, files):  # the toy app the drivers were first tried on (HTC_DL_APPS_DIR)
    "Move the slider: the readout and the result follow."
    out = page.locator(".widget-html").first.inner_text()
    for _ in range(3):
        t0 = time.perf_counter()
        press_slider(page, 0, "ArrowRight")
        _, now = wait_for_change(page, page.locator(".widget-html").first, out)
        record(app, "slider step", time.perf_counter() - t0)
        x = int(slider_readout(page, 0))
        assert now.endswith(str(x * x)), (x, now)
        out = now


DRIVERS = {"classifier": drive_classifier, "gradient_descent": drive_gradient_descent,
           "recommender": drive_recommender, "multilabel_threshold": drive_multilabel_threshold,
           "slider": drive_slider}


def driver_for(app):
    """The app's driver: from DRIVERS above, else `drive(page, app, files)` in
    tests/drivers/<app>.py (one file per newer app)."""
    if app in DRIVERS: return DRIVERS[app]
    file = ROOT/"tests"/"drivers"/f"{app}.py"
    if not file.exists(): return None
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"drive_{app}", file)
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module.drive


@pytest.mark.parametrize("app", APPS)
def test_app_renders_preheated_and_responds_in_the_browser(voila, page, app, files):
    driver = driver_for(app)
    if driver is None:
        pytest.fail(f"nbs/apps/{app}.ipynb has no browser driver: write drive(page, app, files) "
                    f"in tests/drivers/{app}.py")
    sockets = track_websockets(page)
    # the pool is warm (an earlier test may have taken this app's kernel)
    voila.wait_until_kernels_idle(count=len(APPS) + 1)
    budget = load_scaled_budget(RENDER_BUDGET_S)
    t = open_app(page, voila.url(app))
    TIMINGS["first_render_s"][app], TIMINGS["page_streamed_s"][app] = t, page_streamed_s(page)
    TIMINGS["load_average"].append(os.getloadavg()[0])
    assert not page.locator(
        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").count(), \
        page.locator("body").inner_text()[:2000]
    assert not re.search(r"Traceback|Error:", page.locator("body").inner_text()), \
        page.locator("body").inner_text()[:2000]
    # the pool refills behind this page: let it finish first
    voila.wait_until_kernels_idle(count=len(APPS) + 2)
    driver(page, app, files)
    screenshot(page, app)
    widget_screenshot(page, app)   # tests/make_thumbnails.py turns it into the gallery's thumbnail
    assert sockets["opened"] and not sockets["closed"], sockets
    assert TIMINGS["page_streamed_s"][app] < 1.0, ("the server did not have the page ready: was "
                                                   "the kernel preheated?")
    assert t < budget, (f"{app}: preheated first render took {t:.2f}s; budget {RENDER_BUDGET_S}s "
                        f"on an idle machine, {budget:.2f}s at load average "
                        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


# ---------------------------------------------------------------- bad input in the browser

BAD_FILES = [("notes.png", r"not an image"), ("truncated.jpg", r"truncated|corrupt"),
             ("60mp.png", r"60 megapixels.*limit is \d+ megapixels"),
             ("60mp.jpg", r"60-megapixel JPEG: decoded at 1/\d size")]


@pytest.mark.skipif("classifier" not in APPS, reason="no classifier app yet")
def test_classifier_shows_a_message_for_each_bad_file_and_still_classifies_the_next_upload(
        voila, page, files):
    open_app(page, voila.url("classifier"), ready=".widget-upload")
    voila.wait_until_kernels_idle(count=len(APPS) + 2)
    result = page.locator(".widget-html").nth(1)   # the header is the first
    # the model loads behind the page
    wait_for_text(page, r"Upload a picture: it is classified at once", timeout=120)
    good = [files/"cat.jpg", files/"coffee.jpg"]
    for i, (bad, expected) in enumerate(BAD_FILES):
        before = result.inner_text()
        t0 = time.perf_counter(); upload(page, files/bad)
        _, text = wait_for_change(page, result, before, timeout=60)
        record("classifier", "message for a bad file", time.perf_counter() - t0)
        assert re.search(expected, text, re.I | re.S), f"{bad}: the app reads {text!r}"
        screenshot(page, f"classifier-bad-{bad.replace('.', '-')}")
        upload(page, good[i % 2])   # the app still works
        _, text = wait_for_change(page, result, text, timeout=60)
        assert good[i % 2].name in text and re.search(PERCENT, text), text


@pytest.mark.skipif("classifier" not in APPS, reason="no classifier app yet")
def test_upload_over_the_server_limit_reaches_the_kernel_without_its_bytes_and_the_app_says_so(
        voila, page, files):
    """Voila's connection class (htc_dl.serving) forwards an oversized upload without its bytes: the
    app explains, then works on."""
    limit = voila_settings()["Voila"]["tornado_settings"]["htc_dl_max_upload_bytes"]
    sockets = track_websockets(page)
    open_app(page, voila.url("classifier"), ready=".widget-upload")
    voila.wait_until_kernels_idle(count=len(APPS) + 2)
    result = page.locator(".widget-html").nth(1)   # the header is the first
    # the model loads behind the page
    wait_for_text(page, r"Upload a picture: it is classified at once", timeout=120)
    before = result.inner_text()
    upload(page, files/"oversized.jpg")
    _, text = wait_for_change(page, result, before, timeout=60)
    size_mb = (files/"oversized.jpg").stat().st_size / 2**20
    assert re.search(rf"{size_mb:.1f} MB.*limit", text, re.S), (
        f"the app reads {text!r}; when the server drops an upload's bytes, `content` is empty and "
        "only the upload's reported `size` tells the truth: the app must check `size` "
        "(htc_dl.apps.read_upload) before the content")
    assert f"over the {limit:,}-byte limit: forwarded without its bytes" in voila.log()
    assert not sockets["closed"], ("the websocket was closed: the upload widget would be stuck "
                                   "until a reload")
    screenshot(page, "classifier-oversized")
    upload(page, files/"cat.jpg")
    _, text = wait_for_change(page, result, text, timeout=60)
    assert "cat.jpg" in text and re.search(PERCENT, text), text


# ---------------------------------------------------------------- cold start, for comparison

def test_cold_start_without_preheating_is_slower_and_closing_a_page_stops_its_kernel(browser):
    """Voila as it runs without a pool: every page starts a kernel and executes the notebook before
    widgets show. Closing the page shuts its kernel down (Voila 0.5 alone gets a 403 for a missing
    XSRF cookie, voila#1458; htc_dl.serving.AppKernelConnection sets the cookie)."""
    server = VoilaServer(extra_args=["--preheat_kernel=False"], env={"HTC_DL_SMALL": "1"})
    try:
        ctx = browser.new_context()   # a browser that has never seen Voila's JavaScript either
        server.start()
        TIMINGS["cold"]["server answers after launch"] = server.up_after
        for i, app in enumerate(APPS):
            page = ctx.new_page()
            t = open_app(page, server.url(app))
            TIMINGS["cold"][f"first render {app}" + (" (from voila launch)" if i == 0 else "")] = \
                t + (server.up_after if i == 0 else 0)
            TIMINGS["cold"][f"page streamed {app}"] = page_streamed_s(page)
            page.close(run_before_unload=True)
        ctx.close()
        t0 = time.perf_counter()
        while server.kernels() and time.perf_counter() - t0 < 20: time.sleep(0.5)
        assert not server.kernels(), (f"{len(server.kernels())} kernels still run 20 s after "
                                      "their pages closed")
        assert "403 POST /voila/api/shutdown" not in server.log()
    finally:
        server.stop()
    for app in APPS:
        if app in TIMINGS["first_render_s"]:
            cold = next(v for k, v in TIMINGS["cold"].items()
                        if k.startswith(f"first render {app}"))
            assert cold > TIMINGS["first_render_s"][app], (f"{app}: cold {cold:.2f}s is not "
                                                           "slower than preheated")
