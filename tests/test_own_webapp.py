"""Your own model on your own page: a small classifier trained here on real photos (scikit-image's
cat, coffee and rocket), saved the course's way, turned into the static web app by
`python -m htc_dl.own_webapp`, served on 127.0.0.1 and driven in Debian's Chromium. The page must
show that model's labels and answer like Python's onnxruntime with the threshold chosen on the
model's validation pictures; the command must refuse bad models with a message that names the fix,
writing nothing."""
import json, os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from browser_helpers import require_chromium, launch_chromium, run_module, static_server

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"chelsea": "cat", "coffee": "coffee", "rocket": "rocket"}
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "camera", "brick")
SPEC = dict(arch="timm/test_efficientnet", vocab=list(LABELS.values()), size=[64, 64],
            resize="squish", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

sync_playwright = require_chromium()


def crops(picture, n, rng, smallest=0.55, largest=1.0):
    "`n` random crops (`smallest` to `largest` of each side, half mirrored) of a uint8 picture."
    H, W, _ = picture.shape
    out = []
    for _ in range(n):
        f = rng.uniform(smallest, largest)
        h, w = int(H * f), int(W * f)
        top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        c = picture[top:top + h, left:left + w]
        out.append(np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c))
    return out


def own_webapp_command(*args): return run_module("htc_dl.own_webapp", *args, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "A 3-class classifier trained here on crops of real photos, saved, and its validation folder."
    from htc_dl.deploy import real_photos
    from htc_dl.saving import prepare_image, save_classifier, timm_classifier
    d, rng = tmp_path_factory.mktemp("own"), np.random.default_rng(0)
    torch.manual_seed(0)
    photos = real_photos(tuple(LABELS))
    x, y = [], []
    for i, (name, picture) in enumerate(photos.items()):
        for c in crops(picture, 40, rng):
            x.append(prepare_image(Image.fromarray(c), SPEC)); y.append(i)
        # kept apart, and harder: the validation pictures
        for j, c in enumerate(crops(picture, 8, rng, 0.25, 0.6)):
            (d/"valid"/LABELS[name]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(c).save(d/"valid"/LABELS[name]/f"{j}.png")
    x, y = torch.cat(x), torch.tensor(y)
    model = timm_classifier("test_efficientnet", len(LABELS))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for step in range(80):
        batch = torch.randint(0, len(y), (32,))
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad(); loss.backward(); opt.step()
    folder = save_classifier(model.eval(), SPEC, d/"my_model")
    return folder, d/"valid"


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory):
    "The page built by the command, as a learner runs it."
    folder, valid = trained
    out = tmp_path_factory.mktemp("site")/"site"
    done = own_webapp_command("--model", folder, "--valid", valid, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "3 classes; 'not one of my classes' below" in done.stdout, done.stdout
    return out


def test_the_bundle_holds_the_labels_and_the_threshold_chosen_on_validation_pictures(site, trained):
    from htc_dl.deploy import runtime
    from htc_dl.own_webapp import choose_threshold, labelled_images
    folder, valid = trained
    assert json.loads((site/"model"/"labels.json").read_text()) == SPEC["vocab"]
    rule = json.loads((site/"model"/"answers.json").read_text())
    assert set(rule) == {"rule", "threshold", "n_classes", "texts"} and rule["rule"] == "threshold"
    assert rule["n_classes"] == 3 and rule["texts"] == {
        "label": "{label} ({p}%)", "unknown": "Not one of my {n} classes (closest: {label}, {p}%)"}
    predict = runtime(site/"model"/"model.onnx")
    items, skipped = labelled_images(valid, SPEC["vocab"])
    probs = [predict(np.asarray(Image.open(f).convert("RGB"))) for f, _ in items]
    top = [float(p.max()) for p in probs]
    right = [int(p.argmax()) == i for p, (_, i) in zip(probs, items)]
    assert len(items) == 24 and skipped == 0 and sum(right) >= 20, right   # it learned its classes
    kept = sorted((t for t, r in zip(top, right) if r), reverse=True)
    assert rule["threshold"] == choose_threshold(top, right)["threshold"]
    assert rule["threshold"] <= kept[int(np.ceil(0.95 * len(kept))) - 1]
    assert sum(t >= rule["threshold"] for t in kept) / len(kept) >= 0.95
    readme = (site/"model"/"README.md").read_text()
    print(f"threshold {rule['threshold']:.4f}; {sum(right)} of {len(right)} validation answers "
          "right")
    assert f"below **{rule['threshold']:.4f}**" in readme
    assert "most confident 95% of the answers" in readme
    assert f"on 24 validation pictures from `{valid}`" in readme


@pytest.fixture(scope="module")
def server(site):
    with static_server(site) as base: yield base


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    "Real photos as PNG: the three the model knows and three it was never trained on."
    from htc_dl.deploy import real_photos
    d = tmp_path_factory.mktemp("photos")
    for name, a in real_photos(PHOTOS).items():
        Image.fromarray(a).save(d/f"{name}.png")
    return d


def test_the_page_shows_the_models_labels_and_answers_like_python_on_real_photos(browser_page, site,
                                                                                 photos):
    from htc_dl.deploy import runtime
    from htc_dl.own_webapp import honest_text
    page, server = browser_page
    labels = json.loads((site/"model"/"labels.json").read_text())
    rule = json.loads((site/"model"/"answers.json").read_text())
    assert "3 classes" in page.inner_text("h1")   # the heading counts this model's classes
    predict, unknown = runtime(site/"model"/"model.onnx"), 0
    for name in PHOTOS:
        before = int(page.get_attribute("body", "data-classified") or 0)
        page.set_input_files("#file", str(photos/f"{name}.png"))
        page.wait_for_function(f"Number(document.body.dataset.classified || 0) > {before}",
                               timeout=60_000)
        shown = page.evaluate("window.htcLast")
        probs = predict(np.asarray(Image.open(photos/f"{name}.png").convert("RGB")))
        assert "error" not in shown, shown
        assert shown["top1"] == int(probs.argmax()), (name, shown["top1"], probs)
        assert float(np.abs(np.array(shown["probabilities"]) - probs).max()) <= 1e-3, name
        assert page.inner_text("#answer") == f"{name}.png: {honest_text(probs, labels, rule)}"
        assert set(re.findall(r"^(\w+)\t", page.inner_text("#bars"), re.M)) == set(labels)
        if name in LABELS: assert labels[int(probs.argmax())] == LABELS[name], (name, probs)
        unknown += page.inner_text("#answer").startswith(f"{name}.png: Not one of my 3 classes")
    print(f"photos of other things answered 'not one of my 3 classes': {unknown} of 3")


@pytest.fixture
def browser_page(server):
    "The page in a fresh Chromium context, ready; afterwards no request may have left 127.0.0.1."
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context, seen = browser.new_context(), []
        context.on("request", lambda r: seen.append(r.url))
        page = context.new_page()
        page.goto(f"{server}/index.html")
        page.wait_for_selector("body[data-ready]", timeout=60_000)
        assert page.get_attribute("body", "data-ready") == "1", page.inner_text("#status")
        yield page, server
        context.close(); browser.close()
    assert seen and [u for u in seen if not u.startswith((server + "/", "blob:", "data:"))] == []


def damaged(trained, tmp_path, how):
    "A copy of the saved model, damaged `how`."
    import shutil
    folder = Path(shutil.copytree(trained[0], tmp_path/how))
    weights = folder/"weights.safetensors"
    if how == "truncated": weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    if how == "wrong_labels":
        spec = json.loads((folder/"classifier.json").read_text())
        spec["vocab"].append("dog")
        (folder/"classifier.json").write_text(json.dumps(spec))
    return folder


BAD_MODELS = [
    ("missing", r"no_such_model does not exist\. Pass the folder that save_learner wrote"),
    ("random", r"random\.bin is a file, not a saved classifier \(it starts with '[0-9a-f ]+'\)"),
    ("pickle", r"export\.pkl is a file, a pickle \(what learn\.export\(\) and torch\.save write\)"),
    ("truncated", r"weights\.safetensors is damaged .*cut off while copying or saving\. "
                  r"Copy the folder again"),
    ("wrong_labels", r"names 4 labels \(cat, coffee, rocket, dog\) but the model's last layer "
                     r"gives 3 outputs\. List the 3 labels in its \"vocab\""),
]


@pytest.mark.parametrize("how, message", BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_a_bad_model_stops_the_command_with_problem_and_fix_writing_nothing(trained, tmp_path, how,
                                                                           message):
    if how == "missing": model = tmp_path/"no_such_model"
    elif how == "random":
        model = tmp_path/"random.bin"
        model.write_bytes(bytes(range(256)) * 4)
    elif how == "pickle":
        model = tmp_path/"export.pkl"
        torch.save(torch.nn.Linear(2, 3), model)
    else: model = damaged(trained, tmp_path, how)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = own_webapp_command("--model", model, "--valid", trained[1], "--out", tmp_path/"site")
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout)
    assert re.search(message, done.stderr), done.stderr
    assert "save_learner(learn, 'my_model')" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # no site, no half-built folder


def test_without_validation_pictures_or_with_unlabelled_ones_it_says_what_to_pass(trained,
                                                                                  tmp_path):
    done = own_webapp_command("--model", trained[0], "--out", tmp_path/"site")
    assert done.returncode == 2
    assert "pass --valid FOLDER, pictures the model did not train on" in done.stderr
    (tmp_path/"pictures"/"dogs").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path/"pictures"/"dogs"/"1.png")
    done = own_webapp_command("--model", trained[0], "--valid", tmp_path/"pictures", "--out",
                              tmp_path/"site")
    assert done.returncode == 2 and "none of the 1 pictures under" in done.stderr
    assert "(cat, coffee, rocket)" in done.stderr
    assert not (tmp_path/"site").exists()


def test_an_existing_folder_that_is_not_a_built_page_is_never_replaced(trained, tmp_path):
    (tmp_path/"notes.txt").write_text("my notes")
    done = own_webapp_command("--model", trained[0], "--valid", trained[1], "--out", tmp_path)
    assert done.returncode == 2 and "is not a page this command built" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_pages_workflow_publishes_site_and_its_front_page_links_every_page(site, tmp_path):
    import yaml
    workflow = yaml.safe_load((ROOT/"templates"/"own-model-pages.yml").read_text())
    steps = workflow["jobs"]["publish"]["steps"]
    assert workflow[True]["push"] == {"branches": ["main"]} and workflow["env"]["SITE"] == "site"
    assert [s["uses"].split("@")[0] for s in steps if "uses" in s] == [
        "actions/checkout", "actions/configure-pages", "actions/upload-pages-artifact",
        "actions/deploy-pages"]
    front = next(s["run"] for s in steps if "front page" in s.get("name", ""))
    script = front.split("<<'PY'\n", 1)[1].rsplit("PY\n", 1)[0]
    import shutil
    shutil.copytree(site, tmp_path/"site"/"app")
    (tmp_path/"site"/"posts"/"first").mkdir(parents=True)
    (tmp_path/"site"/"posts"/"first"/"index.html").write_text(
        '<html><head><meta name="generator" content="htc_dl.blog">'
        '<title>What I learned</title></head></html>')
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "SITE": str(tmp_path/"site")},
                   check=True)
    index = (tmp_path/"site"/"index.html").read_text()
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', index) == [
        ("app/", "app"), ("posts/first/", "What I learned")]


def test_a_fastai_learner_becomes_a_page_with_the_threshold_from_its_validation_set(trained,
                                                                                   tmp_path):
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner
    from htc_dl.own_webapp import own_webapp
    dls = ImageDataLoaders.from_folder(trained[1], valid_pct=0.5, seed=0, item_tfms=Resize(64),
                                       bs=8, num_workers=0)
    learn = vision_learner(dls, "test_efficientnet", pretrained=False)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    done = own_webapp(learn, tmp_path/"site")
    rule = json.loads((tmp_path/"site"/"model"/"answers.json").read_text())
    model = tmp_path/"site"/"model"
    assert json.loads((model/"labels.json").read_text()) == list(dls.vocab) == SPEC["vocab"]
    assert done["n_correct"] + done["n_wrong"] == len(dls.valid_ds) == 12
    assert rule["threshold"] == done["threshold"]
    readme = (model/"README.md").read_text()
    assert "12 validation pictures from the Learner's validation set" in readme
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]   # its saved copy is gone
