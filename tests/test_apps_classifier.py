"""The classifier app (htc_dl.apps) driven through its widgets with real files, good and bad, the
way the browser sends them; the default model that makes the Voila app work on its first launch and
answer real photos honestly; and the one upload limit."""
import html, io, json, os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from htc_dl.apps import (MAKE_MODEL, MAX_UPLOAD_MB, MODELS_ENV, classifier_app, default_classifier,
                         ensure_default_model, model_description, models_root, read_upload)
from htc_dl.saving import SPEC_FILE, Classifier, build_model, load_classifier, save_classifier

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ["Bombay", "pug", "samoyed"]
PREDICTIONS = re.compile(r"most likely (\w+)</b>.*?(\d+\.\d)%", re.S)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """An untrained resnet18 for three breeds, saved as the app expects (the app's behaviour does
    not need a good model)."""
    spec = dict(arch="torchvision/resnet18", vocab=VOCAB, size=[64, 64], resize="crop",
                pad_mode="reflection", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                notes={"trained_on": "nothing (test)"})
    return save_classifier(build_model(spec), spec, tmp_path_factory.mktemp("models")/"breeds")


@pytest.fixture(scope="module")
def app(saved_model):
    return classifier_app(saved_model)


def encoded(img, format="PNG", **kwargs):
    buffer = io.BytesIO(); img.save(buffer, format, **kwargs); return buffer.getvalue()


def photo(size=(320, 240)):
    "A JPEG with some structure in it (a gradient and a disc), like a small photo."
    x, y = np.meshgrid(np.linspace(0, 255, size[0]), np.linspace(0, 255, size[1]))
    rgb = np.stack([x, y, 255 - x], -1).astype(np.uint8)
    rgb[(x - 128)**2 + (y - 128)**2 < 60**2] = (30, 30, 35)
    return encoded(Image.fromarray(rgb), "JPEG", quality=90)


def upload(app, name, content, size=None):
    """Hand the upload widget a file as the browser does (ipywidgets 8 deserialises it); the app
    reacts at once."""
    size = len(content) if size is None else size
    app.upload.set_state({"value": [dict(name=name, type="", size=size, content=memoryview(content),
                                         last_modified=1_700_000_000_000)]})
    return shown(app)


def shown(app):
    "The app's answer as the page reads it (HTML entities decoded)."
    return html.unescape(app.result.value)


def assert_predictions(app, name):
    text = shown(app)
    m = PREDICTIONS.search(text)
    assert m and m.group(1) in VOCAB and f"{name}: <b>most likely" in text, text
    percentages = [float(p) for p in re.findall(r"(\d+\.\d)%", text)]
    assert len(percentages) == 3 and abs(sum(percentages) - 100) < 0.5, percentages
    assert app.preview.layout.display != "none" and app.preview.value[:8] == b"\x89PNG\r\n\x1a\n"


def big_png(width, height):
    "A real PNG of one colour: a few hundred kilobytes on disk, width*height*3 bytes once decoded."
    return encoded(Image.new("RGB", (width, height), (200, 180, 150)), compress_level=1)


def truncated_jpeg():
    data = photo()
    return data[: len(data) // 2]


BAD_FILES = {   # name: (how to make it, what the message must say)
    "notes.png": (lambda: b"These are my notes, not a picture.\n" * 20,
                  r"notes\.png is not an image this app can read \(it starts with text 'These are "
                  r"my'\)\. Upload a JPEG, PNG"),
    "empty.jpg": (lambda: b"", r"empty\.jpg is empty \(0 bytes\)\. Upload the picture again"),
    "cut-off.jpg": (truncated_jpeg, r"cut-off\.jpg is truncated or corrupt .*upload it again, "
                                    r"or open and re-save it"),
    "cut-early.jpg": (lambda: photo()[:300],
                      r"cut-early\.jpg starts like a JPEG but is truncated or corrupt "
                      r".*upload it again"),
    "pixel.png": (lambda: encoded(Image.new("RGB", (1, 1), (255, 0, 0))),
                  r"pixel\.png is only 1x1 pixels; the classifier needs at least 16x16\. Upload a "
                  r"larger picture"),
    "60-megapixels.png": (lambda: big_png(10_000, 6_000),
                          r"60-megapixels\.png is 10000x6000 pixels \(60 megapixels\); the limit "
                          r"is 40 megapixels.*Upload a copy resized"),
    "huge.jpg": (lambda: photo() + os.urandom((MAX_UPLOAD_MB + 1) * 2**20),
                 rf"huge\.jpg is {MAX_UPLOAD_MB + 1}\.0 MB; the limit is {MAX_UPLOAD_MB} MB\. "
                 r"Upload a smaller copy"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_upload_shows_what_is_wrong_and_the_next_good_upload_works(app, name):
    make, expected = BAD_FILES[name]
    text = upload(app, name, make())
    assert re.search(expected, text), text
    assert "most likely" not in text and app.preview.layout.display == "none"
    assert not app.button.disabled
    upload(app, "cat.jpg", photo())
    assert_predictions(app, "cat.jpg")


def test_an_upload_whose_bytes_the_server_dropped_is_reported_by_its_size_not_as_empty(app):
    """htc_dl.serving forwards an oversized upload with no bytes; its `size` still says how big it
    was."""
    text = upload(app, "holiday.jpg", b"", size=40 * 2**20)
    assert re.search(rf"holiday\.jpg is 40\.0 MB; the limit is {MAX_UPLOAD_MB} MB", text), text
    assert "empty" not in text
    upload(app, "cat.jpg", photo())
    assert_predictions(app, "cat.jpg")


CONVERTED = {   # name: (how to make it, the note the app shows)
    "transparent.png": (lambda: encoded(Image.new("RGBA", (64, 64), (255, 0, 0, 0))),
                        "transparent parts: filled with white"),
    "gray.png": (lambda: encoded(Image.new("L", (64, 64), 90)),
                 "grayscale: copied into red, green and blue"),
    "scan-16bit.png": (lambda: encoded(Image.fromarray(np.full((64, 64), 40000, np.uint16))),
                       "16-bit image: scaled to 8 bits"),
    "cmyk.jpg": (lambda: encoded(Image.new("CMYK", (64, 64), (0, 120, 200, 20)), "JPEG"),
                 "CMYK colours: converted to RGB"),
    "60-megapixels.jpg": (lambda: encoded(Image.new("RGB", (10_000, 6_000), (90, 60, 30)), "JPEG",
                                          quality=50),
                          "60-megapixel JPEG: decoded at 1/2 size, 5000x3000"),
    "animated.gif": (lambda: encoded(Image.new("RGB", (64, 64), (255, 0, 0)), "GIF", save_all=True,
                                     append_images=[Image.new("RGB", (64, 64), (0, 0, 255))]),
                     "animation of 2 frames: used the first"),
}


@pytest.mark.parametrize("name", CONVERTED)
def test_unusual_pictures_are_converted_classified_and_the_conversion_is_shown(app, name):
    make, note = CONVERTED[name]
    upload(app, name, make())
    assert_predictions(app, name)
    assert note in shown(app), shown(app)


def test_conversions_give_the_right_rgb_pixels():
    white, notes = read_upload(encoded(Image.new("RGBA", (32, 32), (255, 0, 0, 0))))
    assert white.mode == "RGB" and white.getpixel((5, 5)) == (255, 255, 255)
    half_red, _ = read_upload(encoded(Image.new("RGBA", (32, 32), (255, 0, 0, 128))))
    assert half_red.getpixel((5, 5)) == (255, 127, 127)
    assert read_upload(encoded(Image.new("L", (32, 32), 90)))[0].getpixel((0, 0)) == (90, 90, 90)
    deep, notes = read_upload(encoded(Image.fromarray(np.full((32, 32), 40000, np.uint16))))
    assert deep.getpixel((0, 0)) == (155, 155, 155)   # 40000/65535*255
    assert notes == ["16-bit image: scaled to 8 bits",
                     "grayscale: copied into red, green and blue (the model saw colour photos, so "
                     "expect a weaker guess)"]
    rgb48 = np.zeros((32, 32, 3), np.uint16); rgb48[..., 0] = 65535
    wide, _ = read_upload(_png_rgb48(rgb48))
    assert wide.mode == "RGB" and wide.getpixel((0, 0)) == (255, 0, 0)


def _png_rgb48(rgb):
    "A 48-bit RGB PNG (Pillow cannot write one), built with zlib."
    import struct, zlib
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_the_classify_button_reruns_the_last_upload_and_asks_for_one_when_there_is_none(
        saved_model):
    fresh = classifier_app(saved_model)
    assert "Upload a picture" in shown(fresh)
    fresh.button.click()
    assert "No picture yet" in shown(fresh)
    answer = upload(fresh, "cat.jpg", photo())
    fresh.result.value = ""
    fresh.button.click()
    assert shown(fresh) == answer


def test_an_error_inside_the_model_is_shown_and_the_app_keeps_working(saved_model):
    model = load_classifier(saved_model)
    class Flaky(Classifier):
        failures = 1
        def predict(self, image, k=None):
            if self.failures: self.failures -= 1; raise RuntimeError("out of memory")
            return super().predict(image, k)
    app = classifier_app(Flaky(model.model, model.spec))
    assert ("Something went wrong with this picture (RuntimeError: out of memory). The app still "
            "works") in upload(app, "a.jpg", photo())
    upload(app, "b.jpg", photo((200, 300)))
    assert_predictions(app, "b.jpg")


def test_the_app_shows_what_the_model_knows(app):
    header = app.children[0].value
    assert ("torchvision/resnet18" in header and "Bombay, pug, samoyed" in header
            and "trained on: nothing (test)" in header)


def test_without_a_model_the_app_says_how_to_make_one_and_does_not_raise(tmp_path):
    app = classifier_app(tmp_path/"no-model-here")
    assert "No model to classify with" in shown(app) and MAKE_MODEL in shown(app)
    assert app.button.disabled and app.upload.disabled
    app.classify()
    assert "still loading (or failed to load" in shown(app) and app.button.disabled


def test_in_the_background_the_widgets_come_first_and_uploads_wait_for_the_model(saved_model):
    app = classifier_app(saved_model, background=True)
    assert app.upload.disabled or app.classifier is not None   # disabled until the model is there
    app.loading.join(timeout=120)
    assert not app.upload.disabled and "Bombay, pug, samoyed" in app.header.value
    upload(app, "cat.jpg", photo())
    assert_predictions(app, "cat.jpg")


def test_a_fastai_learner_is_refused_with_a_hint():
    class FakeLearner: dls = None
    with pytest.raises(TypeError, match="save_learner"): classifier_app(FakeLearner())


def test_models_root_follows_the_environment_then_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path/"mine"))
    assert models_root() == tmp_path/"mine"
    monkeypatch.delenv(MODELS_ENV)
    assert models_root() == ROOT/"models"


def test_the_voila_notebook_only_builds_the_app_and_uses_the_default_model(saved_model,
                                                                           monkeypatch):
    cells = json.loads((ROOT/"nbs/apps/classifier.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert ("classifier_app(background=True)" in code
            and len([l for l in code.splitlines() if l and not l.startswith("#")]) == 2)
    real = save_classifier(load_classifier(saved_model).model,
                           dict(load_classifier(saved_model).spec, notes=dict(photos="real")),
                           saved_model.parent/"real_breeds")
    monkeypatch.setenv(MODELS_ENV, str(saved_model.parent))
    monkeypatch.setattr("htc_dl.apps.DEFAULT_MODEL", real.name)
    namespace = {}
    exec(compile(code.rsplit("\n", 1)[0] + "\napp = " + code.rsplit("\n", 1)[1],
                 "classifier.ipynb", "exec"), namespace)
    assert type(namespace["app"]).__name__ == "VBox"
    # the widgets showed at once; the model loaded behind them
    namespace["app"].loading.join(timeout=120)
    assert (not namespace["app"].button.disabled
            and "from real photos" in namespace["app"].header.value)
    upload(namespace["app"], "cat.jpg", photo())
    assert_predictions(namespace["app"], "cat.jpg")


def test_the_default_model_is_trained_once_on_the_cleaned_breeds_and_saved_whole(tmp_path,
                                                                                 monkeypatch):
    folder = tmp_path/"models"/"breeds_classifier"
    # a crash left this: it is not a model
    (tmp_path/"models"/".breeds_classifier.partial-x").mkdir(parents=True)
    assert ensure_default_model(folder, size=64, epochs=1, freeze_epochs=1) == folder
    spec = json.loads((folder/SPEC_FILE).read_text())
    assert (spec["vocab"] == VOCAB and spec["size"] == [64, 64]
            and "drawn pictures" in spec["notes"]["trained_on"])
    assert spec["notes"]["photos"] == "drawn" and "mislabels removed" in spec["notes"]["trained_on"]
    assert ("knows 3 drawn breeds (Bombay, pug, samoyed): a demo of the pipeline, "
            "not of real photos" in model_description(load_classifier(folder)))
    assert sorted(p.name for p in folder.iterdir()) == [SPEC_FILE, "weights.safetensors"]
    import htc_dl.pretrained
    monkeypatch.setattr(htc_dl.pretrained, "pretrained_learner",
                        lambda *a, **k: pytest.fail("trained a second time"))
    assert ensure_default_model(folder) == folder
    from htc_dl.data import breed_folders, planted_mislabels
    path = breed_folders(source="offline", size="small")
    mislabelled = planted_mislabels(path)
    clean = [f for d in VOCAB for f in sorted((path/d).glob("*.jpg")) if f not in mislabelled][::4]
    classifier = load_classifier(folder)
    right = sum(classifier.predict(Image.open(f), k=1)[0][0] == f.parent.name for f in clean)
    # 3 breeds: chance is 1/3; tiny 64-pixel test model
    assert right / len(clean) >= 0.7, f"{right} of {len(clean)}"


# ---------------------------------------------------------------- real photos, honestly

def real_photo(name):
    from skimage import data
    buffer = io.BytesIO(); Image.fromarray(getattr(data, name)()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def default_app(tmp_path_factory):
    """The app as a fresh clone opens it offline: no breed model trained on real photos, so
    ImageNet's own head answers."""
    os.environ[MODELS_ENV] = str(tmp_path_factory.mktemp("no-models"))
    try: yield classifier_app(journal=tmp_path_factory.mktemp("journal"))
    finally: del os.environ[MODELS_ENV]


def test_without_a_breed_model_trained_on_real_photos_the_default_is_imagenets_own_head(
        default_app):
    header = html.unescape(default_app.header.value)
    assert ("EfficientNet-Lite0" in header and "names the 25 of the 37 Oxford-IIIT Pets breeds "
            "that ImageNet has" in header), header
    assert ("No breed model trained on real photos yet" in header
            and len(default_app.correct.options) == 37)


def test_the_cat_photo_gets_a_cat_answer_and_imagenets_top_classes_with_percentages(default_app):
    text = upload(default_app, "chelsea.jpg", real_photo("chelsea"))
    assert re.search(r"chelsea\.jpg: <b>a cat(:|;) ", text), text
    assert re.search(r"ImageNet says '(tabby|tiger cat)' \d+%|Egyptian Mau \d+%", text), text
    assert "ImageNet's likeliest classes" in text and len(re.findall(r"\d+\.\d%</td>", text)) == 3
    assert default_app.preview.layout.display != "none"


@pytest.mark.parametrize("name", ["coffee", "rocket", "astronaut", "camera"])
def test_objects_and_people_are_not_a_cat_or_a_dog_and_the_page_shows_what_the_model_sees(
        default_app, name):
    text = upload(default_app, f"{name}.jpg", real_photo(name))
    m = re.search(r"this does not look like a cat or a dog \(the model sees: ([^<]+?) (\d+)%\)",
                  text)
    assert m, text
    bars = re.findall(r"<b>([^<]+)</b></td><td[^>]*>(\d+\.\d)%", text)
    assert bars[0][0] == m.group(1) and abs(float(bars[0][1]) - int(m.group(2))) <= 0.5, \
        (bars, m.groups())
    if name == "coffee": assert m.group(1) == "espresso" and int(m.group(2)) > 50, text


def test_a_bad_file_still_gets_its_message_from_the_imagenet_app(default_app):
    assert "notes.png is not an image" in upload(default_app, "notes.png",
                                                 b"my notes, not a picture")
    assert "chelsea.jpg: <b>a cat" in upload(default_app, "chelsea.jpg", real_photo("chelsea"))


def test_a_second_upload_with_the_same_name_shows_the_new_pictures_answer(default_app):
    "Phones name every photo image.jpg: the second is a new picture, with its answer and preview."
    assert "image.jpg: <b>a cat" in upload(default_app, "image.jpg", real_photo("chelsea"))
    cat_preview = default_app.preview.value
    text = upload(default_app, "image.jpg", real_photo("coffee"))
    assert "image.jpg: <b>this does not look like a cat or a dog (the model sees: espresso" in text
    assert default_app.preview.value != cat_preview
    assert default_app.last["content"] == real_photo("coffee")


def test_an_error_clears_when_a_good_file_with_the_same_name_follows(default_app):
    upload(default_app, "image.jpg", real_photo("coffee"))
    text = upload(default_app, "image.jpg", real_photo("chelsea")[:300])
    assert "image.jpg starts like a JPEG but is truncated" in text
    assert default_app.preview.layout.display == "none" and default_app.last is None
    text = upload(default_app, "image.jpg", real_photo("coffee"))
    assert "truncated" not in text and "the model sees: espresso" in text
    assert default_app.preview.layout.display != "none"


def test_a_saved_model_trained_on_drawn_breeds_is_never_the_default(saved_model, tmp_path,
                                                                    monkeypatch):
    spec = dict(load_classifier(saved_model).spec,
                notes=dict(photos="drawn", trained_on="88 drawn pictures"))
    save_classifier(load_classifier(saved_model).model, spec, tmp_path/"breeds_classifier")
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert type(default_classifier()).__name__ == "ImageNetPets"
    # given explicitly, it is used, and labelled plainly
    drawn = classifier_app(tmp_path/"breeds_classifier")
    assert ("knows 3 drawn breeds (Bombay, pug, samoyed): a demo of the pipeline, "
            "not of real photos" in html.unescape(drawn.header.value))


def test_a_breed_model_trained_on_real_photos_is_the_default_and_says_what_it_learned_from(
        saved_model, tmp_path, monkeypatch):
    notes = dict(photos="real",
                 trained_on="96 real pictures from breed_folders_Bombay_pug_samoyed_real",
                 validation_error="8.3%")
    save_classifier(load_classifier(saved_model).model,
                    dict(load_classifier(saved_model).spec, notes=notes),
                    tmp_path/"breeds_classifier")
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    app = classifier_app()
    header = html.unescape(app.header.value)
    assert ("knows 3 breeds (Bombay, pug, samoyed) from real photos. Trained on 96 real pictures"
            in header and "validation error 8.3%" in header)


def test_the_app_classifies_without_importing_fastai(tmp_path):
    """A cold start must not pay for fastai: the ImageNet default and a saved timm breed model need
    only PyTorch and timm."""
    code = f"""
import sys, io
from PIL import Image
from skimage import data
from htc_dl.apps import classifier_app
from htc_dl.saving import save_classifier, timm_classifier
photo = io.BytesIO(); Image.fromarray(data.chelsea()).save(photo, "JPEG"); photo = photo.getvalue()
def ask(app):
    app.upload.set_state({{"value": [dict(name="c.jpg", type="", size=len(photo), \
content=memoryview(photo), last_modified=0)]}})
    return app.result.value
assert "a cat" in ask(classifier_app()), "imagenet"
spec = dict(arch="timm/efficientnet_lite0", vocab=["Bombay", "pug", "samoyed"], size=[64, 64], \
resize="crop", notes=dict(photos="real"))
save_classifier(timm_classifier("efficientnet_lite0", 3), spec, r"{tmp_path}/breeds_classifier")
assert "most likely" in ask(classifier_app()), "saved timm model"
print(sorted(m for m in sys.modules if m.split(".")[0] == "fastai"))
"""
    env = dict(os.environ, **{MODELS_ENV: str(tmp_path), "HTC_DL_OFFLINE": "1"})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_one_upload_limit_voila_and_the_server_follow_max_upload_mb():
    from htc_dl.serving import MAX_UPLOAD_BYTES
    tornado = json.loads((ROOT/"nbs/apps/voila.json").read_text())["Voila"]["tornado_settings"]
    assert tornado["htc_dl_max_upload_bytes"] == MAX_UPLOAD_BYTES == (MAX_UPLOAD_MB + 1) * 2**20
    # a message over the limit still arrives, without its bytes
    assert tornado["websocket_max_message_size"] >= 2 * MAX_UPLOAD_BYTES
