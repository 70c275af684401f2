"""The Digit studio app (htc_dl.digit_studio): a VAE and a GAN trained as the app trains them on
first launch, the app driven through its widgets and handlers, saving and loading, bad input."""
import re

import numpy as np
import pytest
import torch

import htc_dl.digit_mixer as digit_mixer
import htc_dl.gans as gans
from htc_dl.digit_mixer import MIXER_FILE
from htc_dl.digit_studio import (N_DIRECTIONS, STUDIO_MODELS, cached_studio, digit_studio_app,
                                 draw, sample, set_sliders, steer)


@pytest.fixture(scope="module")
def first_launch(one_torch_thread, tmp_path_factory):
    "The models folder, the studio and its note after a first launch: both trained now and saved."
    folder = tmp_path_factory.mktemp("models")
    studio, note = cached_studio(folder, source="offline", size="small")
    return folder, studio, note


@pytest.fixture(scope="module")
def studio(first_launch): return first_launch[1]


@pytest.fixture
def app(studio): return digit_studio_app(studio, note="test")


def readings(app):
    "{model: (digit, probability)} the app says the classifier reads under each picture."
    found = {}
    for name, panel in app.panels.items():
        m = re.search(r"reads a <b[^>]*>(\d)</b> \((\d+\.\d)%\)", panel.reading.value)
        assert m, panel.reading.value
        found[name] = int(m.group(1)), float(m.group(2)) / 100
    return found


def pictures(app): return {name: panel.picture.value for name, panel in app.panels.items()}


# ---------------------------------------------------------------- what the learner sees

def test_the_app_opens_with_a_vae_and_a_gan_each_drawn_and_read_as_a_digit(app, studio):
    assert list(app.panels) == list(STUDIO_MODELS) == ["VAE", "GAN"]
    assert len(app.sliders) == N_DIRECTIONS and all(s.min == -3 and s.max == 3 for s in app.sliders)
    for name, (digit, p) in readings(app).items():
        assert 0 <= digit <= 9 and 0.1 <= p <= 1, (name, digit, p)
    for model in studio.models.values():   # the sliders follow each model's own main directions
        assert model.directions.shape == (N_DIRECTIONS, model.n_latent)
        assert torch.allclose(model.directions.norm(dim=1), torch.ones(N_DIRECTIONS), atol=1e-5)
    assert all(f"{name}: " in app.header.value for name in STUDIO_MODELS)
    assert "test" in app.header.value


def test_each_models_main_directions_change_its_pictures_more_than_random_directions(studio):
    for name, model in studio.models.items():
        codes = torch.randn(300, model.n_latent, generator=torch.Generator().manual_seed(1))
        random = torch.nn.functional.normalize(torch.randn(N_DIRECTIONS, model.n_latent,
                                               generator=torch.Generator().manual_seed(2)), dim=1)
        with torch.no_grad():
            base = model.decode(codes)
            moved = lambda d: (model.decode(codes + 2 * d) - base).abs().mean().item()
            main, other = [moved(d) for d in model.directions], [moved(d) for d in random]
        assert main[0] > 1.2 * np.mean(other), (name, main, other)


def test_a_slider_redraws_both_models_and_each_picture_is_the_steered_code(app, studio):
    before, n = pictures(app), {k: len(t) for k, t in app.timings.items()}
    app.sliders[0].value = 2.0
    now = pictures(app)
    assert all(now[k] != before[k] for k in STUDIO_MODELS), "both pictures change"
    assert all(len(app.timings[k]) == n[k] + 1 for k in STUDIO_MODELS)
    assert re.search(r"redrawn in VAE \d+ ms, GAN \d+ ms", app.timing.value), app.timing.value
    for name, model in studio.models.items():
        image = draw(model, steer(model, app.bases[name], [s.value for s in app.sliders]))
        base = draw(model, app.bases[name])
        assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1
        assert np.abs(image - base).mean() > 0.01, name   # two sds along direction 1: visible


def test_sample_gives_one_model_a_new_digit_and_leaves_the_other_alone(app):
    for name, other in (("GAN", "VAE"), ("VAE", "GAN")):
        before, code = pictures(app), app.bases[name].clone()
        app.panels[name].sample.click()
        assert pictures(app)[name] != before[name] and pictures(app)[other] == before[other]
        assert not torch.equal(app.bases[name], code)


def test_samples_are_read_as_several_different_digits(app):
    seen = {name: set() for name in STUDIO_MODELS}
    for _ in range(25):
        for name in STUDIO_MODELS:
            sample(app, name)
            seen[name].add(readings(app)[name][0])
    assert all(len(digits) >= 4 for digits in seen.values()), seen


def test_reset_and_random_directions_move_every_slider_with_one_redraw_each(app):
    set_sliders(app, [2.0] * N_DIRECTIONS)
    n = len(app.timings["GAN"])
    app.reset.click()
    assert all(s.value == 0 for s in app.sliders) and len(app.timings["GAN"]) == n + 1
    app.surprise.click()
    assert any(s.value != 0 for s in app.sliders) and all(-3 <= s.value <= 3 for s in app.sliders)
    assert len(app.timings["GAN"]) == n + 2


def test_a_slider_redraw_takes_under_100_ms_at_p95_for_each_model(app):
    for times in app.timings.values(): times.clear()
    for v in np.linspace(-3, 3, 25): app.sliders[1].value = float(v)
    for name, times in app.timings.items():
        assert len(times) == 25 and np.percentile(times, 95) < 100, (name, sorted(times)[-5:])


# ---------------------------------------------------------------- bad input

BAD_VALUES = [([0, 7.5],
               r"Direction 2 got 7\.5, outside the sliders' range; give a number from -3 "),
              ([-3.5], r"Direction 1 got -3\.5"), ([float("nan")], r"Direction 1 got nan"),
              (["lots"], r"'lots', which is not a number"),
              ([0] * 7, r"7 slider values for 6 sliders")]


@pytest.mark.parametrize("values, message", BAD_VALUES)
def test_slider_values_out_of_range_get_a_message_change_nothing_and_the_app_works_on(app, values,
                                                                                     message):
    set_sliders(app, [1.0, -1.0])
    before, positions = pictures(app), [s.value for s in app.sliders]
    set_sliders(app, values)
    assert re.search(message, app.message.value), app.message.value
    assert [s.value for s in app.sliders] == positions and pictures(app) == before
    set_sliders(app, [0.5])
    assert app.message.value == "" and app.sliders[0].value == 0.5 and pictures(app) != before


def test_an_unknown_model_name_gets_a_message_and_the_app_keeps_working(app):
    before = pictures(app)
    sample(app, "StyleGAN")
    assert ("There is no model called 'StyleGAN' in the studio; pick one of 'VAE', 'GAN'."
            in app.message.value)
    assert pictures(app) == before
    app.panels["GAN"].sample.click()
    assert pictures(app)["GAN"] != before["GAN"]
    assert "The classifier reads" in app.panels["GAN"].reading.value


def test_an_error_inside_a_redraw_is_shown_in_the_page_and_the_app_keeps_working(studio):
    app = digit_studio_app(studio)
    gan = studio.models["GAN"]
    good = gan.directions
    try:
        gan.directions = good[:, :3]          # a broken model: directions of the wrong length
        app.sliders[0].value = 1.0            # must not raise
        assert "Something went wrong" in app.message.value
    finally: gan.directions = good
    app.sliders[0].value = 0.5
    assert app.message.value == "" and "The classifier reads" in app.panels["GAN"].reading.value


# ---------------------------------------------------------------- saving and loading

def saved_files(folder): return sorted(p.name for p in folder.iterdir())


def test_first_launch_trains_both_models_later_launches_load_them_and_draw_the_same(first_launch):
    folder, studio, note = first_launch
    assert note.count("trained now") == 2, note
    files = saved_files(folder)
    assert MIXER_FILE in files and len(files) == 2 and not any("partial" in f for f in files), files
    again, note = cached_studio(folder, source="offline", size="small")
    assert "trained now" not in note and note.count("loaded from") == 2, note
    for name, model in studio.models.items():
        code = torch.randn(model.n_latent, generator=torch.Generator().manual_seed(5))
        assert np.allclose(draw(again.models[name], code), draw(model, code), atol=1e-5), name
        assert torch.allclose(again.models[name].directions, model.directions, atol=1e-4), name


def test_damaged_model_files_are_trained_again_leaving_only_whole_files(first_launch, tmp_path,
                                                                       monkeypatch):
    folder, studio, _ = first_launch
    for file in saved_files(folder): (tmp_path/file).write_bytes(b"not a model")
    mixer, generator = digit_mixer.load_mixer(folder/MIXER_FILE)[0], gans.cached_gan(folder)[0]
    calls = []
    monkeypatch.setattr(digit_mixer, "train_mixer", lambda **kw: calls.append("VAE") or mixer)
    monkeypatch.setattr(gans, "train_digit_gan", lambda **kw: calls.append("GAN") or generator)
    again, note = cached_studio(tmp_path)
    assert sorted(calls) == ["GAN", "VAE"] and note.count("trained now") == 2, note
    assert saved_files(tmp_path) == saved_files(folder)          # whole files, no temporary ones
    _, note = cached_studio(tmp_path)
    assert note.count("loaded from") == 2, note


def test_models_load_behind_the_page_and_the_controls_wait_for_them(studio):
    import threading
    release = threading.Event()
    def slow(): release.wait(30); return studio, "loaded for the test"
    app = digit_studio_app(background=True, load=slow)
    assert all(s.disabled for s in app.sliders) and app.panels["GAN"].sample.disabled
    assert "Loading the VAE and the GAN" in app.message.value
    release.set(); app.loading.join(30)
    assert not any(s.disabled for s in app.sliders) and not app.panels["GAN"].sample.disabled
    assert "loaded for the test" in app.header.value and readings(app)


def test_when_the_models_cannot_be_trained_the_page_says_what_to_do(monkeypatch, tmp_path):
    import htc_dl.data
    def no_digits(*args, **kwargs): raise FileNotFoundError("no MNIST digits in /nowhere")
    monkeypatch.setattr(htc_dl.data, "mnist", no_digits)   # what a first launch trains on
    app = digit_studio_app(load=lambda: cached_studio(tmp_path))
    assert "could not be loaded or trained (FileNotFoundError: no MNIST digits" in app.message.value
    assert "What to do" in app.message.value and "mnist()" in app.message.value
    assert saved_files(tmp_path) == []                           # nothing half-written
    app.sliders[0].value = 1.0                      # a move before any model: a message
    assert "still loading" in app.message.value
