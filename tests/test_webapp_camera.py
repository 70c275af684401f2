"""The web app's camera (webapp/app.js) in Chromium, with a fake camera playing real photos
(chelsea, then coffee): the page answers like onnxruntime in Python on the same frames, follows
the video, freezes, sends no frame anywhere, and explains a missing, denied, busy or insecure
camera while uploads keep working. Also the honest answer of a model with its own labels
(answers.json's "threshold" rule, webapp/answer.js)."""
import json, re, time

import numpy as np
import pytest
from PIL import Image

from browser_helpers import (CHROMIUM, CHROMIUM_ARGS, fake_camera_args, photo_video,
                             require_chromium, static_server)

sync_playwright = require_chromium()
INSECURE_HOST = "camera.test"   # the browser resolves it to 127.0.0.1, but it is not secure
RULE = {"rule": "threshold", "threshold": 0.6, "n_classes": 3,
        "texts": {"label": "a {label} ({p}%)",
                  "unknown": "Not one of my {n} classes (closest: {label}, {p}%)"}}


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    "The web app built as `make webapp` builds it."
    from htc_dl.bundle import build_webapp
    return build_webapp(tmp_path_factory.mktemp("webapp")/"dist")


@pytest.fixture(scope="module")
def video(tmp_path_factory, dist):
    "The fake camera's video (1.5 s of chelsea, 1.5 s of coffee), its frames, Python's answers."
    from htc_dl.deploy import runtime
    path, frames = photo_video(("chelsea", "coffee"), tmp_path_factory.mktemp("camera")/"cam.y4m")
    predict = runtime(dist/"model"/"model.onnx")
    return path, frames, {name: predict(frame) for name, frame in frames.items()}


@pytest.fixture(scope="module")
def server(dist):
    "The port of the server of the built page on 127.0.0.1."
    with static_server(dist) as base: yield int(base.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def browsers(video):
    "{'camera': Chromium with the fake camera, 'none': Chromium with no camera at all}."
    with sync_playwright() as p:
        launch = lambda more: p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + more)
        found = {"camera": launch(fake_camera_args(video[0])),
                 "none": launch([f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"])}
        yield found
        for b in found.values(): b.close()


@pytest.fixture
def open_page(browsers, server):
    """open_page(browser='camera', camera=True, host='127.0.0.1', answers=None, init=None,
    ready='1'): a page in a fresh context, once its model is loaded (body[data-ready] = `ready`).
    `camera`: the camera permission; `answers` replaces model/answers.json; `init` runs before the
    page's scripts. `page.requests` lists the URLs it asked for. Afterwards every one must have
    gone to the page's own server, and no script may have failed."""
    opened = []

    def open_(browser="camera", camera=True, host="127.0.0.1", answers=None, init=None, ready="1"):
        context = browsers[browser].new_context(permissions=["camera"] if camera else [])
        requests, errors = [], []
        context.on("request", lambda r: requests.append(r.url))
        if answers is not None:
            context.route("**/model/answers.json", lambda route: route.fulfill(json=answers))
        if init: context.add_init_script(init)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.requests, base = requests, f"http://{host}:{server}/"
        opened.append((context, requests, errors, base))
        page.goto(base + "index.html")
        page.wait_for_selector("body[data-ready]", timeout=60_000)
        assert page.get_attribute("body", "data-ready") == ready, page.inner_text("#status")
        return page

    yield open_
    for context, urls, errors, base in opened:
        context.close()
        assert urls and [u for u in urls if not u.startswith((base, "blob:", "data:"))] == [], urls
        assert errors == [], errors


def start_camera(page):
    "Press 'Use my camera' and wait for the first answer (or the error); returns window.htcCamera."
    page.click("#camera-start")
    page.wait_for_function("(window.htcCamera || {}).error || (window.htcCamera || {}).answers",
                           timeout=60_000)
    return page.evaluate("window.htcCamera")


def camera_answers(page, seconds):
    "The camera answers the page gives in `seconds`, by number: {n: (top-1, probabilities, text)}."
    seen, t0 = {}, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        now = page.evaluate("window.htcCamera")
        seen[now["answers"]] = (now["top1"], np.array(now["probabilities"]), now["answer"]["text"])
        page.wait_for_timeout(40)
    return seen


def assert_upload_works(page, dist, tmp_path):
    "Choose chelsea as a photo: the page classifies it as Python does."
    from htc_dl.deploy import real_photos, runtime
    path = tmp_path/"chelsea.png"
    Image.fromarray(real_photos(("chelsea",))["chelsea"]).save(path)
    before = int(page.get_attribute("body", "data-classified") or 0)
    page.set_input_files("#file", str(path))
    page.wait_for_function(f"Number(document.body.dataset.classified || 0) > {before}",
                           timeout=60_000)
    shown = page.evaluate("window.htcLast")
    python = runtime(dist/"model"/"model.onnx")(np.asarray(Image.open(path)))
    assert shown.get("top1") == int(python.argmax()), shown
    assert page.inner_text("#answer").startswith("chelsea.png: ")
    assert not page.is_visible("#message")


def test_the_camera_answers_like_python_on_the_same_frames_and_follows_the_video(open_page, video):
    path, frames, python = video
    top1 = {name: int(p.argmax()) for name, p in python.items()}
    assert top1["chelsea"] != top1["coffee"], top1
    page = open_page()
    loaded = len(page.requests)
    start_camera(page)
    seen = camera_answers(page, 8)   # more than two turns of the 3-second video
    assert all(t in top1.values() for t, _, _ in seen.values()), (seen.values(), top1)
    by_photo = {name: [p for t, p, _ in seen.values() if t == top1[name]] for name in python}
    assert min(len(ps) for ps in by_photo.values()) >= 2, {k: len(v) for k, v in by_photo.items()}
    gaps = {name: max(float(np.abs(p - python[name]).max()) for p in ps)
            for name, ps in by_photo.items()}
    print(f"{max(seen)} camera answers in 8 s; largest probability gap to Python: {gaps}")
    assert max(gaps.values()) < 0.02, gaps   # the YUV -> RGB round trip moves a grey level or two
    order = [seen[n][0] for n in sorted(seen)]
    assert sum(a != b for a, b in zip(order, order[1:])) >= 2, order   # cat -> coffee -> cat ...
    timing = page.inner_text("#timing")
    assert re.fullmatch(r"400x300 frames, \d+\.\d answers per second \(this one in \d+ ms\), "
                        r"in your browser\.", timing), timing
    assert page.inner_text("#answer").startswith("Camera: ")
    assert page.locator("#bars tr").count() == 3
    assert page.is_visible("#video") and not page.is_visible("#preview")
    assert page.requests[loaded:] == [], page.requests[loaded:]   # no frame goes anywhere


def test_freeze_keeps_the_frame_and_its_answer_until_resumed(open_page, video):
    path, frames, python = video
    page = open_page()
    start_camera(page)
    page.click("#freeze")
    page.wait_for_function("window.htcCamera.frozen")
    frozen = page.evaluate("window.htcCamera")
    text, answers = page.inner_text("#answer"), frozen["answers"]
    pixels = page.evaluate("""() => { const c = document.getElementById('frozen');
      return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    rgb = np.array(pixels, dtype=float).reshape(300, 400, 4)[..., :3]
    shown = min(frames, key=lambda name: np.abs(rgb - frames[name]).mean())   # the frozen photo
    assert np.abs(rgb - frames[shown]).mean() < 3 and frozen["top1"] == int(python[shown].argmax())
    page.wait_for_timeout(2000)   # the video moves on to the other photo meanwhile
    assert page.inner_text("#answer") == text
    assert page.evaluate("window.htcCamera.answers") == answers
    assert page.is_visible("#frozen") and not page.is_visible("#video")
    assert page.inner_text("#freeze") == "Resume"
    page.click("#freeze")
    page.wait_for_function(f"window.htcCamera.answers > {answers} + 2", timeout=30_000)
    assert page.is_visible("#video") and page.inner_text("#freeze") == "Freeze"
    page.click("#camera-stop")
    page.wait_for_function("!document.getElementById('camera-start').disabled")
    assert not page.is_visible("#result")
    assert page.evaluate("document.getElementById('video').srcObject") is None   # camera released


def test_a_camera_unplugged_while_running_gets_a_message_and_uploads_still_work(
        open_page, dist, tmp_path):
    page = open_page()
    start_camera(page)
    # what the browser fires when it is unplugged
    page.evaluate("document.getElementById('video').srcObject.getVideoTracks()[0]"
                  ".dispatchEvent(new Event('ended'))")
    page.wait_for_selector("#message:not([hidden])", timeout=30_000)
    assert page.inner_text("#message").startswith(
        "The camera stopped (unplugged, or taken by another")
    assert page.is_enabled("#camera-start")
    assert page.evaluate("document.getElementById('video').srcObject") is None   # camera released
    assert_upload_works(page, dist, tmp_path)


BUSY = """// Chromium's error when another program has the camera
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Could not start video source", "NotReadableError"));"""


@pytest.mark.parametrize("case, pattern", [
    ("denied", r"The camera permission was denied\. Allow the camera for this page"),
    ("no camera", r"No camera was found on this computer\. Plug one in"),
    ("busy", r"The camera is busy: another program \(a video call\?\) is using it"),
    ("not secure", rf"The camera works only on a secure page .* this page is "
                   rf"http://{INSECURE_HOST}:\d+\. Open it over https, or choose a photo instead")])
def test_a_camera_that_cannot_start_gets_its_message_and_uploads_still_work(
        open_page, dist, tmp_path, case, pattern):
    page = {"denied": lambda: open_page(camera=False), "no camera": lambda: open_page("none"),
            "busy": lambda: open_page(init=BUSY),
            "not secure": lambda: open_page("none", host=INSECURE_HOST)}[case]()
    assert page.evaluate("window.isSecureContext") == (case != "not secure")
    page.click("#camera-start")
    page.wait_for_selector("#message:not([hidden])", timeout=30_000)
    assert re.search(pattern, page.inner_text("#message")), page.inner_text("#message")
    assert page.is_enabled("#camera-start")   # to try again once it is fixed
    assert_upload_works(page, dist, tmp_path)


def test_the_threshold_answer_in_chromium(open_page):
    page = open_page()
    got = page.evaluate("""async (rule) => {
      const m = await import('./answer.js'), labels = ['cat', 'dog', 'teapot'];
      return [m.answerFor([0.1, 0.7, 0.2], labels, rule),
              m.answerFor([0.35, 0.4, 0.25], labels, rule),
              m.answerFor([0.2, 0.2, 0.6], labels, rule), m.ruleProblem(rule, labels),
              m.ruleProblem(rule, ['cat', 'dog']), m.ruleProblem({...rule, threshold: 60}, labels),
              m.ruleProblem({...rule, rule: 'vote'}, labels)]; }""", RULE)
    assert got[0] == {"kind": "label", "label": "dog", "probability": 0.7, "text": "a dog (70%)"}
    assert got[1]["kind"] == "unknown"
    assert got[1]["text"] == "Not one of my 3 classes (closest: dog, 40%)"
    assert got[2]["text"] == "a teapot (60%)"   # at the threshold: an answer
    assert got[3:] == [None, "it is for 3 classes but labels.json has 2",
                       "its threshold is 60, not a probability between 0 and 1",
                       'its rule "vote" is neither "threshold" nor ImageNet\'s pets rule']


def test_a_model_with_its_own_rule_names_its_classes_and_says_when_it_does_not_know(
        open_page, video):
    path, frames, python = video
    top = {name: (int(p.argmax()), float(p.max())) for name, p in python.items()}
    threshold = round((top["chelsea"][1] + top["coffee"][1]) / 2, 2)   # one photo above, one below
    page = open_page(answers={**RULE, "n_classes": 1000, "threshold": threshold})
    assert page.inner_text("#title") == page.title() == "Which of my 1000 classes is it?"
    assert f"Below {threshold:.0%} confidence it says it does not know" in page.inner_text("#about")
    start_camera(page)
    texts = {text for _, _, text in camera_answers(page, 5).values()}
    labels = json.loads(page.evaluate("fetch('model/labels.json').then(r => r.text())"))
    sure, unsure = sorted(top, key=lambda name: -top[name][1])
    assert any(t.startswith(f"a {labels[top[sure][0]]} (") for t in texts), texts
    closest = f"Not one of my 1000 classes (closest: {labels[top[unsure][0]]}, "
    assert any(t.startswith(closest) for t in texts), texts


def test_an_answers_json_that_does_not_fit_the_model_stops_the_page_with_the_fix(open_page):
    page = open_page(answers=RULE, ready="failed")   # 3 classes, but the model has 1,000
    assert ("model/answers.json does not fit this model: it is for 3 classes but labels.json has "
            "1000. Export the bundle again") in page.inner_text("#status")
    assert page.is_disabled("#camera-start") and page.is_disabled("#file")
