"""The deployment bundle (htc_dl.deploy, htc_dl.bundle): preprocessing inside the ONNX graph,
every runtime agreeing with PyTorch, int8 and OpenVINO files, the honest-answer rule shipped as
data, and a bundle that is written all or nothing."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from htc_dl.bundle import export_classifier
from htc_dl.deploy import (PixelsClassifier, agreement, centre_box, imagenet_classifier,
                           photo_views, int8_instructions, real_photos, resize_pixels, runtime,
                           torch_runtime)
from htc_dl.saving import build_model, load_classifier, prepare_image, save_classifier

VOCAB = ["Bombay", "pug", "samoyed"]
STD = [0.229, 0.224, 0.225]


def saved_spec(resize, size=(64, 48), **extra):
    return dict(arch="torchvision/resnet18", vocab=VOCAB, size=list(size), resize=resize,
                pad_mode="reflection", mean=[0.485, 0.456, 0.406], std=STD,
                notes={"trained_on": "nothing (test)"}, **extra)


@pytest.fixture(scope="module")
def photos(): return real_photos(("chelsea", "coffee", "astronaut", "rocket", "camera", "page"))


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    """An untrained resnet18 for three breeds saved with htc_dl.saving, as lesson 3 saves its
    classifier."""
    torch.manual_seed(0)
    spec = saved_spec("crop")
    return save_classifier(build_model(spec), spec, tmp_path_factory.mktemp("models")/"breeds")


@pytest.fixture(scope="module")
def saved_bundle(saved_folder, tmp_path_factory):
    return export_classifier(saved_folder, tmp_path_factory.mktemp("bundles")/"breeds")


@pytest.fixture(scope="module")
def imagenet():
    return imagenet_classifier()


CHECKED = ("chelsea", "coffee", "astronaut", "rocket", "camera", "page", "colorwheel", "logo")


@pytest.fixture(scope="module")
def imagenet_bundle(imagenet, tmp_path_factory):
    """The web app's model, exported with int8 calibrated on flipped and cropped views and checked
    on the untouched photos."""
    views = photo_views(real_photos(CHECKED))
    return export_classifier(imagenet, tmp_path_factory.mktemp("bundles")/"imagenet",
                             calibration=[v for i, v in enumerate(views) if i % 6 in (1, 3, 5)],
                             check_images=list(real_photos(CHECKED).values()))


def test_resize_as_matrix_products_matches_pil_to_within_its_rounding_when_shrinking_and_enlarging(
        photos):
    for kind, pil in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)):
        # shrink and enlarge
        for name, (h, w) in (("chelsea", (150, 200)), ("rocket", (224, 224)), ("page", (500, 900))):
            ours = resize_pixels(torch.from_numpy(photos[name]).permute(2, 0, 1).float(),
                                 h, w, kind).permute(1, 2, 0).numpy()
            theirs = np.asarray(Image.fromarray(photos[name]).resize((w, h), pil)).astype(
                np.float32)
            # PIL rounds to whole numbers after each pass; bicubic's negative lobes can stretch that
            # rounding a little
            assert np.abs(ours - theirs).max() <= (1.0 if kind == "bilinear" else 1.5), \
                (kind, name, np.abs(ours - theirs).max())


def test_centre_box_is_fastais_crop_and_the_imagenet_centre_crop():
    assert centre_box(300, 451, 224, 224) == (0, 75, 300, 300)
    # a 4:3 model on a 3:2 photo: full height
    assert centre_box(300, 451, 48, 64) == (0, 25, 300, 400)
    assert centre_box(451, 300, 224, 224, 0.875) == (94, 19, 262, 262)


@pytest.mark.parametrize("resize", ["crop", "squish", "random_resized_crop"])
def test_the_graphs_preprocessing_equals_prepare_image_up_to_pils_rounding(resize, photos):
    spec = saved_spec(resize, val_xtra=0.14)
    module = PixelsClassifier(torch.nn.Identity(), spec)
    for name, a in photos.items():
        ours = module.prepare(torch.from_numpy(a))
        theirs = prepare_image(Image.fromarray(a), spec)
        assert ours.shape == theirs.shape == (1, 3, 48, 64), (ours.shape, theirs.shape)
        assert (ours - theirs).abs().max() <= 1.01 / 255 / min(STD), \
            (resize, name, float((ours - theirs).abs().max()))


def test_padding_is_refused_with_advice_and_no_partial_bundle_is_left(saved_folder, tmp_path):
    spec = saved_spec("pad")
    with pytest.raises(ValueError, match=r"can squish, crop or random_resized_crop, not 'pad'"):
        PixelsClassifier(torch.nn.Identity(), spec)
    classifier = load_classifier(saved_folder)
    classifier.spec = dict(classifier.spec, resize="pad")
    with pytest.raises(ValueError, match="not 'pad'"):
        export_classifier(classifier, tmp_path/"bundle")
    assert not (tmp_path/"bundle").exists() and not list(tmp_path.glob(".bundle.partial-*"))


def test_a_saved_lesson3_classifier_exports_with_every_runtime_agreeing_with_pytorch(
        saved_folder, saved_bundle, photos):
    files = {p.relative_to(saved_bundle).as_posix() for p in saved_bundle.rglob("*") if p.is_file()}
    assert {"model.onnx", "model_int8.onnx", "openvino/model.xml", "openvino/model.bin",
            "labels.json", "README.md", "manifest.json", "preprocessing.json"} <= files, files
    assert "answers.json" not in files   # three breeds of its own: no ImageNet rule to apply
    assert json.loads((saved_bundle/"labels.json").read_text()) == VOCAB
    reference = torch_runtime(load_classifier(saved_folder))
    images = list(photos.values())
    for path, engine in ((saved_bundle/"model.onnx", "onnxruntime"),
                         (saved_bundle/"openvino"/"model.xml", "openvino")):
        check = agreement(reference, runtime(path, engine), images)
        assert check["top1"] == 1 and check["max_gap"] < 1e-4, (engine, check)
    probs = runtime(saved_bundle/"model.onnx")(photos["chelsea"])
    assert probs.shape == (3,) and abs(probs.sum() - 1) < 1e-5


def test_the_graph_accepts_any_picture_size_from_16_pixels_to_wide_panoramas(saved_bundle):
    predict, rng = runtime(saved_bundle/"model.onnx"), np.random.default_rng(0)
    for shape in ((16, 16, 3), (17, 3000, 3), (1200, 40, 3), (333, 777, 3)):
        probs = predict(rng.integers(0, 256, shape, dtype=np.uint8))
        assert (probs.shape == (3,) and np.isfinite(probs).all()
                and abs(probs.sum() - 1) < 1e-5), shape


def test_imagenet_bundle_agrees_with_pytorch_ships_the_honest_rule_and_documents_each_target(
        imagenet, imagenet_bundle):
    from htc_dl.breeds import honest_answer, honest_answer_table
    assert (json.loads((imagenet_bundle/"answers.json").read_text())
            == json.loads(json.dumps(honest_answer_table())))
    labels = json.loads((imagenet_bundle/"labels.json").read_text())
    assert len(labels) == 1000 and labels == list(imagenet.vocab)
    views = photo_views(real_photos(("chelsea", "coffee", "rocket")))
    reference = torch_runtime(imagenet)
    fp32 = runtime(imagenet_bundle/"model.onnx")
    for path, engine in ((imagenet_bundle/"model.onnx", "onnxruntime"),
                         (imagenet_bundle/"openvino"/"model.xml", "openvino")):
        check = agreement(reference, runtime(path, engine), views)
        assert check["top1"] == 1 and check["max_gap"] < 1e-3, (engine, check)
    photos = real_photos(("chelsea", "coffee"))
    assert honest_answer(fp32(photos["chelsea"]), labels)["kind"] in ("breed", "other_pet")
    coffee = honest_answer(fp32(photos["coffee"]), labels)
    assert (coffee["kind"] == "not_pet"
            and "does not look like a cat or a dog" in coffee["text"]), coffee
    readme = (imagenet_bundle/"README.md").read_text()
    for needed in ("onnxruntime", "OpenVINO", "onnxruntime-web", "blobconverter", "not run",
                   "uint8"):
        assert needed in readme, needed


def test_int8_file_is_a_quarter_of_fp32_and_its_agreement_is_measured_and_recorded(imagenet_bundle):
    manifest = json.loads((imagenet_bundle/"manifest.json").read_text())
    sizes = manifest["files_mb"]
    assert sizes["model_int8.onnx"] < 0.35 * sizes["model.onnx"], sizes
    check = manifest["checks"]["onnxruntime_int8_vs_fp32"]
    # measured, not assumed: the lesson discusses the gap
    assert check["n"] == len(CHECKED) and check["top1"] >= 0.6, check
    chelsea = real_photos(("chelsea",))["chelsea"]
    assert (runtime(imagenet_bundle/"model_int8.onnx")(chelsea).argmax()
            == runtime(imagenet_bundle/"model.onnx")(chelsea).argmax())


def test_int8_as_written_is_quantised_arithmetic_and_the_bundle_records_the_cpus_int8_instructions(
        imagenet_bundle, photos):
    manifest = json.loads((imagenet_bundle/"manifest.json").read_text())
    assert manifest["int8_instructions"] == int8_instructions()
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert (set(manifest["int8_instructions"]) <= flags
            and all("vnni" in f or f.startswith("amx") for f in manifest["int8_instructions"]))
    readme = (imagenet_bundle/"README.md").read_text()
    assert "int8 dot-product instructions: " + (", ".join(int8_instructions()) or "none") in readme
    fp32, int8 = imagenet_bundle/"model.onnx", imagenet_bundle/"model_int8.onnx"
    for a in list(photos.values())[:3]:
        # fp32: the optimiser changes nothing
        np.testing.assert_allclose(runtime(fp32, optimise=False)(a), runtime(fp32)(a), atol=1e-5)
        as_written = runtime(int8, optimise=False)(a)
        # int8: close, not equal
        assert (abs(as_written.sum() - 1) < 1e-3
                and 0 < np.abs(as_written - runtime(fp32)(a)).max() < 0.5)
