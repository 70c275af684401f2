"""Lesson 4b's attacks outside the lesson: the Fool the classifier app (htc_dl.fool) driven through
its widgets on real photos, real and broken uploads, and the attacks' guarantees."""
import html, io, os, re

import numpy as np
import pytest
import torch
from PIL import Image

from htc_dl.app_toolkit import MAX_UPLOAD_MB
from htc_dl.attacks import PixelModel, fgsm, pgd, photo_pixels, top1
from htc_dl.fool import APP_PGD_STEPS, attack_photo, fool_app
from htc_dl.deploy import real_photos


@pytest.fixture(scope="module")
def model(one_torch_thread):
    from htc_dl.pretrained import imagenet_model, imagenet_labels
    return PixelModel(imagenet_model()), imagenet_labels()


@pytest.fixture(scope="module")
def app(model):
    return fool_app(*model)


def jpeg(array, quality=90):
    buf = io.BytesIO(); Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def upload(app, name, content, size=None):
    """Hand the upload widget a file as the browser does (ipywidgets 8 deserialises it); the app
    reacts at once."""
    app.upload.set_state({"value": [dict(name=name, type="",
                                         size=len(content) if size is None else size,
                                         content=memoryview(content),
                                         last_modified=1_700_000_000_000)]})


def top_label(widget):
    "The first label in a top-3 table."
    return html.unescape(re.search(r"<td><b>(.*?)</b>", widget.value).group(1))


def reset(app):
    app.method.value, app.target.value, app.eps.value, app.photo.value = (
        "FGSM", "any other class", 2, "chelsea")


def test_the_cat_is_a_cat_and_fgsm_at_two_grey_levels_changes_its_answer_in_under_a_second(app):
    reset(app)
    app.eps.value = 1; app.eps.value = 2
    assert top_label(app.before) in ("tabby", "tiger cat", "Egyptian cat"), app.before.value
    assert (top_label(app.after) != top_label(app.before)
            and "Fooled" in app.verdict.value), app.verdict.value
    assert app.timings[-1] < 1.0, app.timings
    assert float(app.last["perturbation"].abs().max()) * 255 == pytest.approx(2, abs=1e-4)
    assert all(im.value[:8] == b"\x89PNG\r\n\x1a\n" for im in app.images)


def test_fgsm_answers_at_one_two_and_three_grey_levels_take_under_a_second_in_the_median(app):
    reset(app)
    for level in (1, 2, 3): app.eps.value = level
    assert float(np.median(app.timings[-3:])) < 1, app.timings
    reset(app)


def test_epsilon_zero_leaves_the_photo_unchanged_and_says_so(app):
    reset(app)
    app.eps.value = 0
    assert top_label(app.after) == top_label(app.before) and "unchanged" in app.verdict.value
    reset(app)


def test_targeted_pgd_makes_the_cat_a_toaster_and_fills_the_progress_bar(app):
    reset(app)
    app.target.value = "toaster"; app.method.value = "PGD"; app.eps.value = 4
    assert top_label(app.after) == "toaster", app.after.value
    assert app.progress.value == APP_PGD_STEPS and app.progress.max == APP_PGD_STEPS
    assert float(app.last["perturbation"].abs().max()) <= 4 / 255 + 1e-6
    reset(app)


def test_a_real_photo_upload_is_attacked(app):
    reset(app)
    upload(app, "coffee.jpg", jpeg(real_photos(["coffee"])["coffee"]))
    assert app.photo.value == "your upload: coffee.jpg" and app.message.value == ""
    assert top_label(app.before) in ("espresso", "cup", "coffee mug"), app.before.value
    assert "Fooled" in app.verdict.value
    reset(app)


class GatedPhotos(dict):
    """Photos that are handed over only once `gate` is set, so a test can look at the page while it
    is still loading."""
    def __init__(self, photos, gate): super().__init__(photos); self.gate = gate
    def items(self): assert self.gate.wait(30), "the gate was never opened"; return super().items()


def test_in_the_background_the_page_comes_first_and_the_cat_is_attacked_once_loaded(model):
    import threading
    gate = threading.Event()
    app = fool_app(*model, photos=GatedPhotos(real_photos(["chelsea", "coffee"]), gate),
                   background=True)
    assert ("Loading the ImageNet model" in app.message.value and app.photo.disabled
            and app.eps.disabled)
    assert app.photo.value is None and app.images[0].value == b"" and app.loading.is_alive()
    gate.set(); app.loading.join(30)
    assert not app.loading.is_alive() and not app.photo.disabled and app.message.value == ""
    assert app.photo.value == "chelsea" and list(app.photo.options) == ["chelsea", "coffee"]
    assert (top_label(app.before) in ("tabby", "tiger cat", "Egyptian cat")
            and "Fooled" in app.verdict.value), app.verdict.value


@pytest.mark.parametrize("photos, problem", [({"broken": "not a photo"}, "Could not load"),
                                             ({}, "no photos were given")])
def test_photos_that_cannot_be_read_leave_a_message_and_the_controls_off(model, photos, problem):
    app = fool_app(*model, photos=photos)
    assert problem in app.message.value and "Reload the page" in app.message.value, \
        app.message.value
    assert (app.photo.value is None and app.verdict.value == "" and app.photo.disabled
            and app.eps.disabled and app.upload.disabled)


BAD_FILES = {
    "notes.png": (lambda: b"These are my notes, not a picture.\n" * 20,
                  r"notes\.png is not an image this app can read"),
    "cut-off.jpg": (lambda: jpeg(real_photos(["chelsea"])["chelsea"])[:20_000],
                    r"cut-off\.jpg (starts like a JPEG but )?is truncated or corrupt"),
    "60-megapixels.png": (lambda: (lambda b: (Image.new("RGB", (10_000, 6_000), (200, 150, 90))
                                              .save(b, format="PNG", compress_level=1),
                                              b.getvalue())[1])(io.BytesIO()),
                          r"60-megapixels\.png is 10000x6000 pixels \(60 megapixels\); "
                          r"the limit is 40"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_upload_shows_a_clear_message_and_the_app_keeps_working(app, name):
    reset(app)
    make, expected = BAD_FILES[name]
    before = app.before.value
    upload(app, name, make())
    message = html.unescape(app.message.value)
    assert re.search(expected, message), message
    assert ("still shows chelsea" in message and app.photo.value == "chelsea"
            and app.before.value == before)
    app.eps.value = 3                                   # the next move still attacks
    assert "Fooled" in app.verdict.value and app.message.value == ""


def test_upload_over_the_size_limit_is_refused_by_its_reported_size(app):
    reset(app)
    upload(app, "huge.jpg", b"", size=(MAX_UPLOAD_MB + 1) * 2**20)
    assert f"the limit is {MAX_UPLOAD_MB} MB" in html.unescape(app.message.value)
    assert app.photo.value == "chelsea"


def test_fgsm_and_pgd_stay_within_epsilon_on_whole_grey_levels(model):
    net, _ = model
    x = torch.stack([photo_pixels(real_photos(["rocket"])["rocket"])])
    label = top1(net, x)
    for attack in (fgsm, pgd):
        adv = attack(net, x, 3 / 255, label)
        # a savable picture
        assert ((adv - x).abs().max() * 255 <= 3 + 1e-4
                and (adv * 255 - (adv * 255).round()).abs().max() < 1e-3)
        assert 0 <= adv.min() and adv.max() <= 1


def test_unknown_method_is_an_error_that_names_the_choices(model):
    net, labels = model
    with pytest.raises(ValueError, match="FGSM"):
        attack_photo(net, photo_pixels(real_photos(["coffee"])["coffee"]), labels, 1,
                     method="magic")


CAT, COFFEE = ("tabby", "tiger cat", "Egyptian cat"), ("espresso", "cup", "coffee mug")


def test_a_second_photo_with_the_same_name_shows_the_new_photo_and_its_attack(app):
    "Phones name every photo image.jpg: the second one is a new picture, and the page must say so."
    reset(app)
    photos = real_photos(["coffee", "astronaut"])
    upload(app, "image.jpg", jpeg(photos["coffee"]))
    coffee = (app.images[0].value, top_label(app.before))
    assert app.photo.value == "your upload: image.jpg" and coffee[1] in COFFEE, coffee[1]
    upload(app, "image.jpg", jpeg(photos["astronaut"]))
    assert app.photo.value == "your upload: image.jpg" and app.message.value == ""
    assert app.images[0].value != coffee[0] and top_label(app.before) not in COFFEE
    astronaut = photo_pixels(Image.open(io.BytesIO(jpeg(photos["astronaut"]))))
    assert torch.equal(app.pictures["your upload: image.jpg"], astronaut)
    assert list(app.photo.options).count("your upload: image.jpg") == 1
    reset(app)


def test_after_a_rejected_file_the_same_name_again_clears_the_message_and_shows_the_photo(app):
    reset(app)
    photos = real_photos(["coffee", "chelsea"])
    upload(app, "image.jpg", jpeg(photos["coffee"]))
    upload(app, "image.jpg", b"this upload was cut off")   # a broken file under the same name
    assert "image.jpg is not an image this app can read" in html.unescape(app.message.value)
    assert top_label(app.before) in COFFEE
    upload(app, "image.jpg", jpeg(photos["chelsea"]))
    assert app.message.value == "" and top_label(app.before) in CAT, app.before.value
    assert "Fooled" in app.verdict.value
    reset(app)


def test_the_same_file_chosen_again_after_picking_a_bundled_photo_is_shown_again(app):
    "The upload widget is emptied once read, so choosing the same file again is a new upload."
    reset(app)
    coffee = jpeg(real_photos(["coffee"])["coffee"])
    upload(app, "image.jpg", coffee)
    assert app.upload.value == ()
    app.photo.value = "chelsea"
    assert top_label(app.before) in CAT
    upload(app, "image.jpg", coffee)
    assert app.photo.value == "your upload: image.jpg" and top_label(app.before) in COFFEE
    reset(app)


# -------------------------------------------------------------- the lesson's helpers on toy models

def identity_model():
    "Two inputs, two logits equal to them: the loss gradient is known by hand."
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad(): model.weight[:] = torch.eye(2)
    return model


def test_saliency_of_a_linear_model_is_its_weights_largest_over_colour_and_correlation_reads_r():
    from htc_dl.attacks import correlation, saliency
    lin = torch.nn.Linear(3 * 2 * 2, 2, bias=False)
    with torch.no_grad(): lin.weight[:] = torch.arange(24.).view(2, 12) - 12
    toy = torch.nn.Sequential(torch.nn.Flatten(), lin)
    assert torch.allclose(saliency(toy, torch.zeros(1, 3, 2, 2), [1])[0],
                          torch.arange(12.).view(3, 2, 2).amax(0))
    assert correlation([1, 2, 3], [2, 4, 6.5]) == pytest.approx(1, abs=0.01)


def test_fgsm_steps_away_from_the_label_or_towards_a_target_and_stays_in_0_1():
    model = identity_model()
    assert torch.allclose(fgsm(model, torch.tensor([[0.5, 0.5]]), 0.1, [0]),
                          torch.tensor([[0.4, 0.6]]))
    assert torch.allclose(fgsm(model, torch.tensor([[0.5, 0.5]]), 0.1, [0], targeted=True),
                          torch.tensor([[0.6, 0.4]]))
    assert torch.equal(fgsm(model, torch.tensor([[0., 1.]]), 0.1, [0]), torch.tensor([[0., 1.]]))


def test_pgd_reports_each_step_to_its_progress_callback():
    seen = []
    pgd(identity_model(), torch.tensor([[0.5, 0.5]]), 0.1, [0], steps=3,
        progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_amplified_maps_minus_eps_to_black_no_change_to_grey_plus_eps_to_white():
    from htc_dl.attacks import amplified, as_picture
    assert (amplified(torch.tensor([-1., 0., 1.]).view(3, 1, 1) / 255, 1/255)[0, 0].tolist()
            == [0, 128, 255])
    assert as_picture(torch.ones(3, 2, 2)).shape == (2, 2, 3)


def test_success_grid_finds_the_first_level_that_beats_a_lead_and_none_if_no_level_does():
    from htc_dl.attacks import first_success, success_grid
    grid = success_grid(identity_model(), torch.tensor([[0.5, 0.48], [0.5, 0.3]]), [0, 0], fgsm,
                        range(0, 21))
    assert grid.shape == (21, 2)
    # 2 eps must beat a 0.02 lead: 3 grey levels
    assert first_success(grid, range(0, 21)) == [3, None]


def test_train_digits_learns_two_separable_groups_perfectly():
    from htc_dl.attacks import accuracy, train_digits
    torch.manual_seed(0)
    x, y = torch.cat([torch.zeros(20, 4), torch.ones(20, 4)]), torch.tensor([0] * 20 + [1] * 20)
    assert accuracy(train_digits(torch.nn.Linear(4, 2), x, y, epochs=30, lr=0.05), x, y) == 1.0


def test_shuffle_labels_permutes_the_chosen_share_and_epochs_to_counts_from_one():
    from htc_dl.attacks import epochs_to, shuffle_labels
    y = torch.arange(100) % 10
    assert torch.equal(shuffle_labels(y, 0.0), y)
    assert sorted(shuffle_labels(y, 1.0).tolist()) == sorted(y.tolist())
    assert 0.2 < (shuffle_labels(y, 0.5) != y).float().mean() <= 0.5
    assert epochs_to([(0.5, 0), (1.0, 0)]) == 2 and epochs_to([(0.5, 0)]) is None
