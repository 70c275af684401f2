"""Data-ethics experiments (htc_dl.ethics, nbs/core/05_ethics.ipynb; run by lesson 5):
deterministic, with the effects the lesson claims."""
import numpy as np
import pytest
import torch
from htc_dl.ethics import (patrol_feedback_loop, imbalance_experiment, per_class_error,
                           fit_linear_classifier)


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


# ---- the feedback loop ----

def final_share_of_a(seeds=range(20), **kwargs):
    "Mean share of patrols in area A after the last round, over `seeds`."
    return np.mean([patrol_feedback_loop([20, 20], [30, 20], rounds=30, seed=s,
                                         **kwargs)["patrol_share"][-1, 0] for s in seeds])


def test_feedback_loop_is_a_pure_function_of_its_seed():
    a, b = (patrol_feedback_loop([20, 20], [30, 20], seed=3),
            patrol_feedback_loop([20, 20], [30, 20], seed=3))
    assert all(np.array_equal(a[k], b[k]) for k in ("patrol_share", "crimes", "recorded"))
    c = patrol_feedback_loop([20, 20], [30, 20], seed=4)
    assert not np.array_equal(a["crimes"], c["crimes"])


def test_feedback_loop_does_not_touch_global_random_state():
    np.random.seed(0); expected = np.random.rand()
    np.random.seed(0)
    patrol_feedback_loop([20, 20], [30, 20], seed=1)
    assert np.random.rand() == expected


def test_feedback_loop_history_has_one_row_per_round_and_records_only_crimes_that_happened():
    out = patrol_feedback_loop([5, 10, 15], [10, 10, 10], rounds=12, seed=0)
    assert {k: v.shape for k, v in out.items()} == {"patrol_share": (12, 3), "crimes": (12, 3),
                                                    "recorded": (12, 3)}
    np.testing.assert_allclose(out["patrol_share"].sum(1), 1)
    assert (out["recorded"] <= out["crimes"]).all() and (out["recorded"] >= 0).all()
    # equal records: equal patrols at first
    np.testing.assert_allclose(out["patrol_share"][0], [1/3, 1/3, 1/3])


def test_hot_spot_policy_sends_almost_all_patrols_to_the_area_with_more_old_records():
    assert final_share_of_a(hotspot=2) > 0.9    # same true crime in A and B, records start 30 vs 20


def test_proportional_policy_keeps_the_initial_bias_instead_of_correcting_it():
    assert abs(final_share_of_a(hotspot=1) - 0.6) < 0.1


def test_correcting_for_patrols_breaks_the_loop_and_finds_the_true_rates():
    assert abs(final_share_of_a(hotspot=2, correct_for_patrols=True) - 0.5) < 0.05
    # unequal true rates: the corrected estimate follows the truth
    # (share of A ~ 10^2 / (10^2 + 30^2) with hotspot=2)
    uneven = np.mean([patrol_feedback_loop([10, 30], [20, 20], rounds=40, correct_for_patrols=True,
                                           seed=s)["patrol_share"][-1, 0]
                      for s in range(10)])
    assert abs(uneven - 0.1) < 0.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(true_rates=[20], initial_records=[5]), "at least 2 areas"),
    (dict(true_rates=[20, 20], initial_records=[5]), "one count per area"),
    (dict(true_rates=[-1, 20], initial_records=[5, 5]), "must be >= 0"),
    (dict(true_rates=[20, 20], initial_records=[0, 5]), "never get a patrol"),
    (dict(true_rates=[20, 20], initial_records=[5, 5], rounds=0), "whole number >= 1"),
    (dict(true_rates=[20, 20], initial_records=[5, 5], rounds=2.5), "whole number >= 1"),
    (dict(true_rates=[20, 20], initial_records=[5, 5], hotspot=0), "hotspot must be > 0"),
])
def test_feedback_loop_bad_input_says_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        patrol_feedback_loop(**kwargs)


# ---- the under-represented class ----

@pytest.fixture(scope="module")
def blobs():
    "Four overlapping Gaussian classes in 16-D: 24 training and 40 validation examples each."
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 0.7
    def draw(n):
        y = torch.arange(4).repeat_interleave(n)
        return centres[y] + torch.randn(len(y), 16, generator=g), y
    return (*draw(24), *draw(40))


def minority_error(blobs, fix, keep=3, seeds=range(5)):
    return np.mean([imbalance_experiment(*blobs, minority=2, keep=keep, fix=fix, seed=s)[2].item()
                    for s in seeds])


def test_per_class_error_counts_mistakes_within_each_true_class():
    logits = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [1., 0.]])
    torch.testing.assert_close(per_class_error(logits, torch.tensor([0, 0, 1, 1]), 2),
                               torch.tensor([0., 0.5]))


def test_linear_classifier_from_zeros_is_deterministic_and_learns(blobs):
    train_x, train_y, *_ = blobs
    a, b = fit_linear_classifier(train_x, train_y, 4), fit_linear_classifier(train_x, train_y, 4)
    torch.testing.assert_close(a.weight, b.weight)
    assert per_class_error(a(train_x), train_y, 4).mean() < 0.2


def test_under_represented_class_gets_a_much_worse_error(blobs):
    balanced = imbalance_experiment(*blobs, minority=2)
    assert balanced.max() < 0.2                       # with all its examples every class is learned
    assert minority_error(blobs, None) > balanced[2].item() + 0.3


def test_reweighting_lowers_the_minority_error(blobs):
    assert minority_error(blobs, "reweight") < minority_error(blobs, None) - 0.1


def test_oversampling_equals_reweighting_with_full_batch_training(blobs):
    # 24 examples in the other classes, 3 kept: 8 copies each, exactly the weight reweighting gives
    for seed in range(3):
        torch.testing.assert_close(imbalance_experiment(*blobs, 2, 3, "oversample", seed=seed),
                                   imbalance_experiment(*blobs, 2, 3, "reweight", seed=seed))


def test_imbalance_experiment_is_deterministic_for_a_seed_and_the_seed_picks_the_kept_examples(
        blobs):
    runs = [imbalance_experiment(*blobs, 2, 1, seed=s) for s in (0, 0, 1, 2, 3)]
    torch.testing.assert_close(runs[0], runs[1])
    assert any(not torch.equal(runs[0], r) for r in runs[2:])


@pytest.mark.parametrize("change, message", [
    (dict(minority=7), "minority must be the index of a class"),
    (dict(minority="Bombay"), "minority must be the index of a class"),
    (dict(keep=0), "keep must be from 1 to 24"),
    (dict(keep=25), "keep must be from 1 to 24"),
    (dict(fix="smote"), "fix must be one of"),
    (dict(train_y=torch.zeros(5, dtype=torch.long)), "one label per row of train_x"),
    (dict(valid_x=torch.zeros(160, 16, dtype=torch.long)), "valid_x must be a 2-D float tensor"),
])
def test_imbalance_experiment_bad_input_says_what_is_wrong(blobs, change, message):
    train_x, train_y, valid_x, valid_y = blobs
    kwargs = dict(train_x=train_x, train_y=train_y, valid_x=valid_x, valid_y=valid_y, minority=2,
                  keep=3) | change
    with pytest.raises(ValueError, match=message):
        imbalance_experiment(**kwargs)
