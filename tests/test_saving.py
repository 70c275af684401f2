"""Saving a classifier without pickle (htc_dl.saving): weights + JSON, all or nothing, and the
loaded model prepares pictures and predicts exactly as the fastai learner it came from."""
import json, pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from htc_dl.data import breed_folders
from htc_dl.saving import (SPEC_FILE, Classifier, build_model, classifier_spec, load_classifier,
                           prepare_image, save_classifier, save_learner)

fastai = pytest.importorskip("fastai.vision.all")
from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, Learner, RandomResizedCrop,
                               RandomSplitter, Resize, ResizeMethod, get_image_files, nn,
                               parent_label, resnet18, vision_learner)


@pytest.fixture(scope="module")
def pictures():
    return breed_folders(source="offline", size="small")


def breed_dls(path, item_tfms):
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files,
                      get_y=parent_label, splitter=RandomSplitter(0.2, seed=0), item_tfms=item_tfms)
    return block.dataloaders(path, bs=8, num_workers=0)


@pytest.fixture(scope="module")
def learner(pictures):
    """An untrained resnet18 learner at 48x64 (non-square, so width and height cannot be swapped
    unnoticed)."""
    torch.manual_seed(0)
    return vision_learner(breed_dls(pictures, Resize((48, 64))), resnet18, pretrained=False)


def fastai_inputs(learn, files):
    """The batch fastai's validation pipeline makes from `files` (what learn.predict feeds the
    model)."""
    return learn.dls.test_dl(files).one_batch()[0]


RESIZES = {"squish": Resize((48, 64), ResizeMethod.Squish), "crop": Resize((48, 64)),
           "pad with zeros": Resize((48, 64), ResizeMethod.Pad, pad_mode="zeros"),
           "pad by reflection": Resize((48, 64), ResizeMethod.Pad),
           "random resized crop": RandomResizedCrop((48, 64), min_scale=0.3)}


@pytest.mark.parametrize("name", RESIZES)
def test_prepare_image_matches_fastai_validation_transforms_for_each_resize_method(
        pictures, learner, name):
    learn = learner
    learn.dls = breed_dls(pictures, RESIZES[name])
    spec = classifier_spec(learn)
    files = get_image_files(pictures)[:4]
    ours = torch.cat([prepare_image(Image.open(f), spec) for f in files])
    theirs = fastai_inputs(learn, files)
    assert ours.shape == theirs.shape == (4, 3, 48, 64)
    torch.testing.assert_close(ours, torch.as_tensor(theirs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("format", ["safetensors", "pth"])
def test_loaded_classifier_gives_the_learners_outputs(pictures, learner, tmp_path, format):
    learn = learner
    learn.dls = breed_dls(pictures, Resize((48, 64)))
    folder = save_learner(learn, tmp_path/"model", format=format, data="breeds")
    assert sorted(p.name for p in folder.iterdir()) == sorted([SPEC_FILE, f"weights.{format}"])
    spec = json.loads((folder/SPEC_FILE).read_text())
    assert spec["arch"] == "torchvision/resnet18" and spec["vocab"] == ["Bombay", "pug", "samoyed"]
    assert spec["size"] == [64, 48] and spec["notes"] == {"data": "breeds"}
    classifier = load_classifier(folder)
    files = get_image_files(pictures)[:4]
    with torch.no_grad():
        expected = learn.model.eval()(fastai_inputs(learn, files))
        got = classifier.model(torch.cat([prepare_image(Image.open(f), spec) for f in files]))
    torch.testing.assert_close(got, torch.as_tensor(expected), atol=1e-4, rtol=1e-4)
    top = classifier.predict(Image.open(files[0]))
    assert [label for label, _ in top] == [spec["vocab"][i]
                                           for i in expected[0].argsort(descending=True)]
    assert (abs(sum(p for _, p in top) - 1) < 1e-5
            and len(classifier.predict(Image.open(files[0]), k=2)) == 2)


def test_pretrained_timm_learner_round_trips_with_its_imagenet_normalisation(pictures, tmp_path):
    from htc_dl.pretrained import pretrained_learner
    learn = pretrained_learner(breed_dls(pictures, Resize(64)), source="offline")
    folder = save_learner(learn, tmp_path/"lite0")
    spec = json.loads((folder/SPEC_FILE).read_text())
    assert spec["arch"] == "timm/efficientnet_lite0"
    assert ([round(m, 3) for m in spec["mean"]] == [0.485, 0.456, 0.406]
            and [round(s, 3) for s in spec["std"]] == [0.229, 0.224, 0.225])
    files = get_image_files(pictures)[:3]
    with torch.no_grad():
        expected = learn.model.eval()(fastai_inputs(learn, files))
        got = load_classifier(folder).model(
            torch.cat([prepare_image(Image.open(f), spec) for f in files]))
    torch.testing.assert_close(got, torch.as_tensor(expected), atol=1e-4, rtol=1e-4)


def test_a_weights_file_holding_pickled_objects_is_refused(learner, tmp_path):
    folder = save_learner(learner, tmp_path/"model", format="pth")
    class Payload:   # anything but tensors needs unpickling, which could run code
        def __reduce__(self): return (print, ("this ran while loading",))
    torch.save({"weights": torch.zeros(1), "payload": Payload()}, folder/"weights.pth")
    with pytest.raises(ValueError, match="holds more than tensors"): load_classifier(folder)


def test_missing_or_foreign_files_give_messages_that_say_what_to_do(learner, tmp_path):
    with pytest.raises(FileNotFoundError,
                       match="classifier.json is missing. Save one with save_learner"):
        load_classifier(tmp_path/"nothing")
    folder = save_learner(learner, tmp_path/"model")
    spec = json.loads((folder/SPEC_FILE).read_text())
    (folder/SPEC_FILE).write_text(json.dumps({k: v for k, v in spec.items() if k != "vocab"}))
    with pytest.raises(ValueError, match=r"lacks \['vocab'\]"): load_classifier(folder)
    # weights for 3 classes, spec says 2
    (folder/SPEC_FILE).write_text(json.dumps(dict(spec, vocab=["a", "b"])))
    with pytest.raises(ValueError, match="do not fit torchvision/resnet18 with 2 classes"):
        load_classifier(folder)
    with pytest.raises(ValueError, match="must start with 'timm/' or 'torchvision/'"):
        build_model(dict(spec, arch="keras/vgg"))


def test_a_learner_whose_architecture_cannot_be_rebuilt_is_refused(learner):
    custom = Learner(learner.dls, nn.Sequential(nn.Flatten(), nn.LazyLinear(3)))
    with pytest.raises(ValueError, match="torchvision or timm architecture"):
        classifier_spec(custom)


def test_a_failed_save_leaves_the_old_model_and_no_partial_files(learner, tmp_path, monkeypatch):
    folder = save_learner(learner, tmp_path/"model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    import safetensors.torch
    def disk_full(*args, **kwargs): raise OSError(28, "No space left on device")
    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"): save_learner(learner, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_saving_again_replaces_the_model_unless_told_to_keep_the_first(learner, tmp_path):
    folder = save_learner(learner, tmp_path/"model", version="first")
    spec = classifier_spec(learner, version="second")
    save_classifier(learner.model, spec, folder, replace=False)
    assert load_classifier(folder).spec["notes"] == {"version": "first"}
    save_classifier(learner.model, spec, folder)
    assert load_classifier(folder).spec["notes"] == {"version": "second"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_classifier_made_by_hand_predicts_every_label_once(learner):
    spec = dict(arch="torchvision/resnet18", vocab=["a", "b", "c"], size=[32, 32], resize="squish")
    classifier = Classifier(build_model(spec), spec)
    predictions = classifier.predict(Image.new("RGB", (40, 30), (10, 200, 30)))
    assert sorted(label for label, _ in predictions) == ["a", "b", "c"]
    assert predictions == sorted(predictions, key=lambda lp: -lp[1])


def test_a_timm_model_is_rebuilt_without_fastai_under_fastais_names_and_gives_its_outputs():
    from fastai.vision.learner import create_timm_model
    from htc_dl.saving import timm_classifier
    theirs = create_timm_model("efficientnet_lite0", 5, pretrained=False)[0].eval()
    ours = timm_classifier("efficientnet_lite0", 5).eval()
    assert ({k: v.shape for k, v in ours.state_dict().items()}
            == {k: v.shape for k, v in theirs.state_dict().items()})
    ours.load_state_dict(theirs.state_dict())   # strict: every name matches
    x = torch.randn(3, 3, 96, 80)
    with torch.no_grad(): torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    spec = dict(arch="timm/efficientnet_lite0", vocab=list("abcde"), size=[64, 64], resize="squish")
    assert type(build_model(spec)[1][0]).__name__ == "ConcatPool"
