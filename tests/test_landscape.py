"""The marble on the error landscape (htc_dl.landscape, its app htc_dl.landscape_app): gradients and
paths checked against PyTorch, divergence reported instead of NaNs, bad arguments refused with a
clear message, and the app driven through its widgets without a browser, with its redraw time
measured."""
import json, math, time
from pathlib import Path

import numpy as np
import pytest
import torch

import htc_dl.landscape_app as landscape_app
from htc_dl.landscape import LANDSCAPES, MAX_STEPS, descend
from htc_dl.landscape_app import APP_MAX_NOISE, APP_MAX_STEPS, LR_RANGE, gradient_descent_app

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"

# the landscapes' formulas in PyTorch, so autograd can check the hand-written gradients
TORCH_FORMULAS = {"bowl": lambda x, y: x**2 + y**2,
                  "narrow valley": lambda x, y: 0.05 * x**2 + 2 * y**2,
                  "bumpy": lambda x, y: 0.2 * (x**2 + y**2)
                                        + 0.5 * (1 - torch.cos(2.5 * x) * torch.cos(2.5 * y))}


@pytest.fixture(scope="module")
def app():
    return gradient_descent_app()


# ---------------------------------------------------------------- landscapes and paths

@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_each_landscapes_loss_and_hand_written_gradient_match_pytorch_autograd(name):
    land = LANDSCAPES[name]
    assert set(LANDSCAPES) == set(TORCH_FORMULAS)
    for x, y in np.random.default_rng(0).uniform(-land.extent, land.extent, (50, 2)):
        point = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
        loss = TORCH_FORMULAS[name](point[0], point[1])
        loss.backward()
        assert land.loss(x, y) == pytest.approx(loss.item(), abs=1e-12)
        np.testing.assert_allclose(land.gradient(x, y), point.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("name, lr", [("bowl", 0.1), ("narrow valley", 0.3), ("bumpy", 0.05)])
def test_descend_without_noise_follows_torch_optim_sgd_step_for_step(name, lr):
    path = descend(name, (2.4, -1.7), lr=lr, steps=80)
    point = torch.tensor([2.4, -1.7], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([point], lr=lr)
    expected = [point.detach().clone().numpy()]
    for _ in range(80):
        TORCH_FORMULAS[name](point[0], point[1]).backward(); opt.step(); opt.zero_grad()
        expected.append(point.detach().clone().numpy())
    np.testing.assert_allclose(path.positions, np.array(expected), atol=1e-10)
    assert path.positions.shape == (81, 2) and path.losses.shape == (81,) and not path.diverged


def test_the_bowl_is_reached_the_bumpy_start_gets_stuck_and_the_messages_say_so():
    reached = descend("bowl", (2.4, 2.2), 0.1, 60)
    assert reached.losses[-1] < 1e-6 and reached.message.startswith("Reached the bottom")
    stuck = descend("bumpy", (2.4, 2.2), 0.05, 300)
    assert stuck.losses[-1] > 0.5 and np.allclose(stuck.positions[-1], [1.1004, 1.1004], atol=1e-3)
    assert (stuck.message.startswith("Stuck in a local minimum")
            and "Add mini-batch noise" in stuck.message)
    rolling = descend("narrow valley", (2.8, 0.5), 0.01, 20)
    assert rolling.message.startswith("Still rolling") and "more steps" in rolling.message


def test_noise_shakes_the_marble_out_of_the_local_minimum_for_some_seeds_and_the_same_seed_repeats(
):
    shaken = [descend("bumpy", (2.4, 2.2), 0.05, 300, noise=2.0, seed=s) for s in range(20)]
    escaped = sum(d.losses[-1] < 0.2 for d in shaken)
    assert 4 <= escaped < 20, escaped    # noise can help, and it is random
    assert (shaken[3].message.startswith("Shaken by noise")
            and "near the lowest point" in shaken[3].message)
    again = descend("bumpy", (2.4, 2.2), 0.05, 300, noise=2.0, seed=3)
    np.testing.assert_array_equal(again.positions, shaken[3].positions)
    assert not np.array_equal(shaken[3].positions, shaken[4].positions)
    np.testing.assert_array_equal(descend("bowl", (1, 1), 0.1, 20, seed=1).positions,
                                  descend("bowl", (1, 1), 0.1, 20, seed=2).positions)


# ---------------------------------------------------------------- divergence

@pytest.mark.parametrize("name, lr, by_step",
                         [("bowl", 1.1, 15), ("narrow valley", 0.6, 15), ("bumpy", 50.0, 2),
                          ("bowl", 1e300, 1)])
def test_a_too_large_learning_rate_is_reported_as_divergence_never_as_nans(name, lr, by_step):
    path = descend(name, (2.0, 1.0), lr=lr, steps=200)
    assert path.diverged and 1 <= path.diverged_at <= by_step
    assert np.isfinite(path.positions).all() and np.isfinite(path.losses).all()
    # cut at the step that flew off
    assert len(path.positions) == len(path.losses) == path.diverged_at
    assert path.message.startswith(f"Diverged at step {path.diverged_at}")
    assert ("Lower the learning rate" in path.message
            and f"{LANDSCAPES[name].max_stable_lr:g}" in path.message)


def test_a_learning_rate_just_above_stable_that_climbs_slowly_says_the_loss_went_up():
    # factor -1.04 a step: climbs, stays on the map
    path = descend("bowl", (1.0, 1.0), lr=1.02, steps=10)
    assert not path.diverged and path.losses[-1] > path.losses[0]
    assert path.message.startswith("The loss went up") and "Lower the learning rate" in path.message


def test_max_stable_lr_is_where_the_bowl_and_the_valley_start_to_climb():
    for name in ("bowl", "narrow valley"):
        limit = LANDSCAPES[name].max_stable_lr
        assert descend(name, (1.0, 1.0), limit * 0.98, 400).losses[-1] < 0.05
        assert descend(name, (1.0, 1.0), limit * 1.05, 400).diverged


# ---------------------------------------------------------------- bad arguments

GOOD = dict(landscape="bowl", start=(1.0, 1.0), lr=0.1, steps=10, noise=0.0, seed=0)


@pytest.mark.parametrize("bad, message", [
    (dict(landscape="volcano"),
     r"unknown landscape 'volcano'; choose one of 'bowl', 'narrow valley', 'bumpy'"),
    (dict(start=5), r"start must be a pair of numbers \(x, y\), got 5"),
    (dict(start=(1, 2, 3)), r"start must be a pair of numbers"),
    (dict(start=(4.0, 0.0)),
     r"start x must be between -3\.0 and 3\.0, got 4\.0\. Start inside the picture"),
    (dict(start=(0.0, float("nan"))), r"start y must be a finite number, got nan"),
    (dict(start=("a", 0)), r"start x must be a finite number, got 'a'"),
    (dict(lr=0), r"lr must be above 0, got 0\. Try 0\.1"),
    (dict(lr=-0.5), r"lr must be above 0"),
    (dict(lr=float("inf")), r"lr must be a finite number, got inf\. Try 0\.1"),
    (dict(lr="0.1"), r"lr must be a finite number, got '0\.1'"),
    (dict(steps=0), rf"steps must be a whole number from 1 to {MAX_STEPS}, got 0"),
    (dict(steps=2.5), r"steps must be a whole number"),
    (dict(steps=MAX_STEPS + 1), r"steps must be a whole number"),
    (dict(steps=True), r"steps must be a whole number"),
    (dict(noise=-1.0), r"noise must be at least 0, got -1\.0\. Use 0 for no noise"),
    (dict(seed=-1), r"seed must be a whole number of at least 0"),
])
def test_descend_refuses_bad_arguments_naming_the_argument_and_the_fix(bad, message):
    with pytest.raises(ValueError, match=message):
        descend(**(GOOD | bad))


def test_numpy_numbers_are_accepted_like_python_numbers():
    path = descend("bowl", np.array([1.0, 1.0]), np.float32(0.1), np.int64(5),
                   noise=np.float64(0.0), seed=np.int64(0))
    assert len(path.positions) == 6


# ---------------------------------------------------------------- the app, without a browser

def test_app_sliders_are_bounded_to_values_descend_accepts(app):
    c = app.controls
    assert list(c["landscape"].options) == list(LANDSCAPES)
    for axis in ("x", "y"): assert (c[axis].min, c[axis].max) == (-3.0, 3.0)
    assert (c["lr"].min == pytest.approx(math.log10(LR_RANGE[0]))
            and c["lr"].max == pytest.approx(math.log10(LR_RANGE[1])))
    assert ((c["steps"].min, c["steps"].max) == (1, APP_MAX_STEPS)
            and (c["noise"].min, c["noise"].max) == (0, APP_MAX_NOISE))
    assert c["seed"].min == 0
    for name in LANDSCAPES:   # every corner of the slider box is a valid call
        for x, y, lr, steps, noise in [(-3, -3, LR_RANGE[0], 1, 0),
                                       (3, 3, LR_RANGE[1], APP_MAX_STEPS, APP_MAX_NOISE)]:
            descend(name, (x, y), lr, steps, noise, c["seed"].max)
    c["lr"].value = 100.0                                # a slider clamps what a learner could type
    assert c["lr"].value == pytest.approx(LR_RANGE[1], rel=0.01)
    c["lr"].value = 0.05


def test_each_control_redraws_the_pictures_and_the_message(app):
    before = len(app.redraw_seconds)
    pictures = lambda: (bytes(app.landscape_image.value), bytes(app.loss_image.value))
    seen = {pictures()}
    for name, value in [("landscape", "bowl"), ("x", -2.0), ("y", 1.5), ("lr", 0.2), ("steps", 40),
                        ("noise", 1.0), ("seed", 5)]:
        app.controls[name].value = value
        assert pictures()[0][:8] == PNG and pictures()[1][:8] == PNG
        seen.add(pictures())
    assert len(app.redraw_seconds) == before + 7 and len(seen) == 8
    d = app.descent
    assert (d.landscape.name, d.lr, d.noise, d.steps) == ("bowl", pytest.approx(0.2, rel=0.01),
                                                          1.0, 40)
    np.testing.assert_allclose(d.positions[0], [-2.0, 1.5])
    assert "Shaken by noise" in app.message.value


def test_a_diverging_learning_rate_shows_a_red_message_and_finite_pictures(app):
    app.controls["noise"].value = 0.0
    app.controls["landscape"].value = "bowl"
    app.controls["lr"].value = 1.5
    assert (app.descent.diverged and "Diverged at step" in app.message.value
            and "#b3261e" in app.message.value)
    assert app.landscape_image.value[:8] == PNG and app.loss_image.value[:8] == PNG
    app.controls["lr"].value = 0.1                              # and back: it recovers
    assert not app.descent.diverged and "Reached the bottom" in app.message.value


def test_a_failing_redraw_shows_the_problem_and_the_next_change_draws_again(app, monkeypatch):
    def broken(*args, **kwargs): raise RuntimeError("the marble fell off the table")
    monkeypatch.setattr(landscape_app, "descend", broken)
    app.controls["steps"].value = 41                            # must not raise into the page
    assert ("Something went wrong (RuntimeError: the marble fell off the table). Move a slider to "
            "draw again.") in app.message.value
    assert "#b3261e" in app.message.value                       # the apps' shared red message
    monkeypatch.undo()
    app.controls["steps"].value = 42
    assert "Something went wrong" not in app.message.value and len(app.descent.losses) == 43


@pytest.mark.parametrize("bad, message",
                         [(dict(lr=5.0), "lr must be between 0.001 and 2.0 in the app"),
                          (dict(steps=APP_MAX_STEPS + 1), "steps must be at most"),
                          (dict(noise=9.0), "noise must be at most"),
                          (dict(landscape="volcano"), "unknown landscape"),
                          (dict(start=(0, 7)), "start y must be between")])
def test_the_app_refuses_starting_values_its_sliders_could_not_show(bad, message):
    with pytest.raises(ValueError, match=message): gradient_descent_app(**bad)


def test_redraw_time_is_measured_and_well_under_two_seconds():
    """The target is 300 ms a redraw on a 2-core laptop; shared machines are slower, so the bound
    asserted here is loose."""
    app = gradient_descent_app(landscape="bumpy", lr=0.01, steps=60)
    app.redraw_seconds.clear()
    names, lrs = list(LANDSCAPES), [0.02, 0.05, 0.1, 0.3, 0.6, 1.2]
    for i in range(30):     # every assignment changes the value, so each one redraws
        app.controls["landscape"].value = names[i % 3]
        app.controls["lr"].value = lrs[i % 6]
        app.controls["steps"].value = 100 + 5 * i
    ms = np.array(app.redraw_seconds) * 1000
    print(f"\ngradient_descent_app: {len(ms)} redraws, median {np.median(ms):.0f} ms, 95th "
          f"percentile {np.percentile(ms, 95):.0f} ms")
    assert len(ms) == 90 and np.median(ms) < 2000


def test_the_voila_notebook_only_builds_and_shows_the_app():
    nb = json.loads((ROOT/"nbs"/"apps"/"gradient_descent.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code == ["from htc_dl.landscape_app import gradient_descent_app\ngradient_descent_app()"]
    assert (nb["cells"][0]["cell_type"] == "markdown"
            and nb["cells"][0]["source"][0].startswith("# "))
    namespace = {}
    exec(code[0].replace("gradient_descent_app()", "shown = gradient_descent_app()"), namespace)
    assert namespace["shown"].landscape_image.value[:8] == PNG


def test_only_the_landscape_on_show_is_drawn_at_start_and_each_is_drawn_once():
    """A quicker first page: the other two landscapes are drawn the first time the learner picks
    them, then kept."""
    app = gradient_descent_app()
    assert list(app.pictures.views) == ["bumpy"]
    app.controls["landscape"].value = "bowl"
    bowl_view = app.pictures.views["bowl"]
    app.controls["landscape"].value = "bumpy"; app.controls["landscape"].value = "bowl"
    assert (sorted(app.pictures.views) == ["bowl", "bumpy"]
            and app.pictures.views["bowl"] is bowl_view)


def test_messages_use_the_shared_toolkit_colours_red_for_trouble_green_at_the_bottom():
    from htc_dl.apps import MESSAGE_COLOURS
    app = gradient_descent_app(landscape="bowl", lr=0.1, steps=60)
    assert MESSAGE_COLOURS["ok"] in app.message.value and "Reached the bottom" in app.message.value
    app.controls["lr"].value = 1.5
    assert MESSAGE_COLOURS["error"] in app.message.value and "Diverged" in app.message.value
