"""The static web app (webapp/): built from the lesson's export, served by `python -m http.server`
on 127.0.0.1 and driven in Debian's Chromium. It must answer like Python's onnxruntime on real
photos, explain bad files and keep working, load fast, and never send a request anywhere but the
page's own server."""
import json, os, re, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser_helpers import (require_chromium, launch_chromium, load_scaled_budget, screenshot,
                             static_server)

ROOT = Path(__file__).resolve().parent.parent
WEBAPP = ROOT/"webapp"
# The project's targets are 3 s until the model is ready and 60 ms per photo on an idle machine;
# bench/deploy.py reports them. The tests guard against regressions with looser budgets (stretched
# by the load, at most 4x) that a shared, busy CI runner still meets; set these to 3000 and 60 to
# hold a quiet machine to the targets.
READY_BUDGET_MS = float(os.environ.get("HTC_DL_WEBAPP_READY_MS", "10000"))
CLASSIFY_BUDGET_MS = float(os.environ.get("HTC_DL_WEBAPP_CLASSIFY_MS", "500"))

sync_playwright = require_chromium()


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The web app built exactly as `make webapp` builds it, from htc_dl.bundle's export, into a
    fresh folder."""
    from htc_dl.bundle import build_webapp
    return build_webapp(tmp_path_factory.mktemp("webapp")/"dist")


@pytest.fixture(scope="module")
def server(dist):
    with static_server(dist) as base: yield base


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def outside(urls, server):
    "The requested URLs that are not on the page's own server at 127.0.0.1."
    return [u for u in urls if not (u.startswith(server + "/") or u.startswith(("blob:", "data:")))]


@pytest.fixture
def page(browser, server):
    """A fresh context (cold cache) on the page, ready to classify; afterwards, every request it
    made must have stayed local."""
    context, requests_seen = browser.new_context(), []
    context.on("request", lambda r: requests_seen.append(r.url))
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/index.html")
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    assert page.get_attribute("body", "data-ready") == "1", page.inner_text("#status")
    yield page
    context.close()
    assert requests_seen and outside(requests_seen, server) == [], outside(requests_seen, server)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real photos as PNG (lossless, so the browser decodes the same pixels as PIL) and JPEG, and
    the bad files the Voila app is tested with."""
    from htc_dl.deploy import real_photos
    d = tmp_path_factory.mktemp("uploads")
    for name, a in real_photos(("chelsea", "coffee", "astronaut", "rocket", "camera",
                                "logo")).items():
        Image.fromarray(a).save(d/f"{name}.png")
    Image.fromarray(real_photos(("chelsea",))["chelsea"]).save(d/"chelsea.jpg", quality=90)
    (d/"notes.png").write_text("These are my notes, not a picture.\n" * 20)
    (d/"truncated.jpg").write_bytes(
        (d/"chelsea.jpg").read_bytes()[: (d/"chelsea.jpg").stat().st_size // 3])
    (d/"empty.jpg").write_bytes(b"")
    (d/"huge.jpg").write_bytes((d/"chelsea.jpg").read_bytes() + os.urandom(16 * 2**20))
    # tiny on disk, 180 MB decoded
    Image.new("RGB", (10_000, 6_000), (200, 150, 90)).save(d/"60-megapixels.png")
    # a web page disguised as a photo
    (d/"holiday.jpg").write_bytes(b"<html><script>alert('gotcha')</script></html>")
    # a photo with the wrong extension
    (d/"really-a-png.jpg").write_bytes((d/"coffee.png").read_bytes())
    Image.new("RGB", (8, 8)).save(d/"tiny.png")
    return d


def choose(page, path):
    """Choose `path` in the page's file input and wait until the page has dealt with it; returns
    window.htcLast."""
    before = int(page.get_attribute("body", "data-classified") or 0)
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"Number(document.body.dataset.classified || 0) > {before}",
                           timeout=60_000)
    return page.evaluate("window.htcLast")


def python_answer(dist, path):
    """onnxruntime in Python on the same bundle, with PIL decoding the same file, and the Python
    honest answer."""
    from htc_dl.breeds import honest_answer
    from htc_dl.deploy import runtime
    labels = json.loads((dist/"model"/"labels.json").read_text())
    probs = runtime(dist/"model"/"model.onnx")(np.asarray(Image.open(path).convert("RGB")))
    return probs, honest_answer(probs, labels)


def test_page_is_ready_soon_after_a_cold_load(browser, server):
    context, requests_seen = browser.new_context(), []
    context.on("request", lambda r: requests_seen.append(r.url))
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(f"{server}/index.html")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    wall_ms = (time.perf_counter() - t0) * 1000
    ready = page.evaluate("window.htcReady")
    context.close()
    assert outside(requests_seen, server) == [], outside(requests_seen, server)
    budget = load_scaled_budget(READY_BUDGET_MS, cap=4)
    print(f"page ready after {ready['ms']:.0f} ms (page clock), {wall_ms:.0f} ms from navigation; "
          f"{ready['threads']} thread(s); load {os.getloadavg()[0]:.1f}")
    assert wall_ms <= budget, (f"ready after {wall_ms:.0f} ms; budget {budget:.0f} ms at load "
                               f"average {os.getloadavg()[0]:.1f}")


def test_a_static_host_still_gets_two_threads_the_service_worker_isolates_the_page_after_one_reload(
        browser, server):
    context = browser.new_context()
    navigations = []
    page = context.new_page()
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
    page.goto(f"{server}/index.html")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert (page.evaluate("self.crossOriginIsolated")
            and page.evaluate("window.htcReady.threads") == 2)
    # the first visit registers isolation-sw.js and reloads once
    assert len(navigations) == 2, navigations
    again = context.new_page()  # the worker is installed: a new tab is isolated at once
    again.on("framenavigated",
             lambda f: navigations.append(f.url) if f == again.main_frame else None)
    again.goto(f"{server}/index.html")
    again.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert again.evaluate("self.crossOriginIsolated") and len(navigations) == 3, navigations
    assert "2 threads" in again.inner_text("#status")
    context.close()


def test_without_service_workers_the_page_runs_on_one_thread(browser, server):
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    page.goto(f"{server}/index.html")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert (not page.evaluate("self.crossOriginIsolated")
            and page.evaluate("window.htcReady.threads") == 1)
    assert "1 thread)" in page.inner_text("#status")
    context.close()


def test_page_gives_pythons_answer_and_probabilities_on_real_photos(page, dist, files):
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera", "logo"):
        shown = choose(page, files/f"{name}.png")
        probs, answer = python_answer(dist, files/f"{name}.png")
        assert "error" not in shown, shown
        assert shown["top1"] == int(probs.argmax()), (name, shown["top1"], int(probs.argmax()))
        gap = float(np.abs(np.array(shown["probabilities"]) - probs).max())
        assert gap <= 1e-3, (name, gap)
        assert (shown["answer"]["text"] == answer["text"]
                and shown["answer"]["kind"] == answer["kind"]), (shown["answer"], answer)
        assert page.inner_text("#answer") == f"{name}.png: {answer['text']}"
        assert len(re.findall(r"\d+\.\d%", page.inner_text("#bars"))) == 3
        if name == "chelsea": screenshot(page, "webapp-chelsea")   # for the gallery and the README


def test_a_jpeg_gets_the_same_top1_as_pil_decoding_it(page, dist, files):
    shown = choose(page, files/"chelsea.jpg")
    probs, answer = python_answer(dist, files/"chelsea.jpg")
    gap = float(np.abs(np.array(shown["probabilities"]) - probs).max())
    print(f"chelsea.jpg: browser vs PIL decoding, largest probability gap {gap:.2e}")
    assert (shown["top1"] == int(probs.argmax()) and shown["answer"]["kind"] == answer["kind"]
            and gap < 0.02), (shown["answer"], answer, gap)


BAD_FILES = [("notes.png", r"notes\.png is not an image this app can read "
                           r"\(it starts with text 'These are my'\)"),
             ("truncated.jpg",
              r"truncated\.jpg starts like a JPEG but is truncated or corrupt .*upload it again"),
             ("empty.jpg", r"empty\.jpg is empty \(0 bytes\)"),
             ("huge.jpg", r"huge\.jpg is 16\.\d MB; the limit is 15 MB"),
             ("60-megapixels.png",
              r"10000x6000 pixels \(60 megapixels\); the limit is 40 megapixels"),
             ("holiday.jpg", r"holiday\.jpg is not an image this app can read "
                             r"\(it starts with text '<html><scrip'\)"),
             ("tiny.png", r"tiny\.png is only 8x8 pixels; the classifier needs at least 16x16")]


def test_bad_uploads_get_a_message_and_the_page_still_classifies_the_next_photo(page, dist, files):
    for bad, expected in BAD_FILES:
        shown = choose(page, files/bad)
        message = page.inner_text("#message")
        assert re.search(expected, message) and shown.get("error") == message, (bad, message)
        assert not page.is_visible("#result")
        good = choose(page, files/"chelsea.png")
        assert "error" not in good and page.inner_text("#answer").startswith("chelsea.png: "), \
            (bad, good)
        assert not page.is_visible("#message")
    assert page.dialogs == [], page.dialogs   # the disguised page's script never ran


def test_a_photo_with_the_wrong_extension_is_classified_by_its_content(page, dist, files):
    shown = choose(page, files/"really-a-png.jpg")
    probs, answer = python_answer(dist, files/"coffee.png")
    assert shown["top1"] == int(probs.argmax()) and shown["answer"]["text"] == answer["text"], shown


def test_the_browser_classifies_a_photo_in_well_under_a_second(page, files):
    times = [choose(page, files/"chelsea.png")["ms"] for _ in range(7)]
    median = float(np.median(times[1:]))
    budget = load_scaled_budget(CLASSIFY_BUDGET_MS, cap=4)
    print(f"browser WASM, chelsea 451x300: median {median:.1f} ms over {len(times) - 1} runs "
          f"(first {times[0]:.1f}); load {os.getloadavg()[0]:.1f}")
    assert median <= budget, (f"{median:.0f} ms per photo; budget {budget:.0f} ms at load average "
                              f"{os.getloadavg()[0]:.1f}")


def test_no_request_leaves_127_0_0_1_while_loading_and_classifying(browser, server, files):
    context, requests_seen = browser.new_context(), []
    context.on("request", lambda r: requests_seen.append(r.url))
    page = context.new_page()
    page.goto(f"{server}/index.html")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    choose(page, files/"chelsea.png"); choose(page, files/"notes.png")
    context.close()
    names = {u.rsplit("/", 1)[-1] for u in requests_seen}
    assert {"model.onnx", "labels.json", "answers.json",
            "ort-wasm-simd-threaded.wasm"} <= names, names
    assert outside(requests_seen, server) == [], outside(requests_seen, server)
