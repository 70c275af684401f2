"""htc_dl.transfer (nbs/lessons/06a_transfer_learning.ipynb): the learning-rate suggestions, the
per-group learning rates read from the optimiser, and the choice of mixed precision. A three-layer
model on random numbers keeps every test fast."""
import pytest
import torch
from torch import nn

from htc_dl.transfer import group_lrs, lr_suggestions, param_groups, precision_mode


@pytest.fixture(scope="module")
def fastai():
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.callback.core import Callback
    from fastai.torch_core import params
    import fastai.callback.schedule  # noqa: F401  (adds lr_find and fit_one_cycle)
    return dict(DataLoaders=DataLoaders, Learner=Learner, CrossEntropyLossFlat=CrossEntropyLossFlat,
                Callback=Callback, params=params)


@pytest.fixture
def learner(fastai):
    """A fresh 3-group Learner (one group per Linear layer) on 128 random points labelled by the
    sign of their first coordinate."""
    torch.manual_seed(0)
    x = torch.randn(160, 4)
    y = (x[:, 0] > 0).long()
    dls = fastai["DataLoaders"].from_dsets(list(zip(x[:128], y[:128])), list(zip(x[128:], y[128:])),
                                           bs=16, num_workers=0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    splitter = lambda m: [fastai["params"](m[0]), fastai["params"](m[2]), fastai["params"](m[4])]
    return fastai["Learner"](dls, model, loss_func=fastai["CrossEntropyLossFlat"](),
                             splitter=splitter)


def test_lr_suggestions_are_four_numbers_in_the_swept_range_and_leave_the_weights(learner):
    before = [p.detach().clone() for p in learner.model.parameters()]
    suggested = lr_suggestions(learner, num_it=40, show_plot=False)
    assert list(suggested) == ["minimum", "steep", "valley", "slide"]
    assert all(type(lr) is float and 1e-7 <= lr <= 10 for lr in suggested.values()), suggested
    assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))


@pytest.mark.parametrize("num_it", [3, 5, 24, 30.0, True, "100"])
def test_lr_suggestions_refuses_too_few_or_odd_steps_with_a_clear_message(learner, num_it):
    with pytest.raises(ValueError, match="at least 25"):
        lr_suggestions(learner, num_it=num_it, show_plot=False)


def test_lr_suggestions_explains_a_sweep_that_diverged_too_soon(learner):
    with pytest.raises(ValueError, match="diverged after .* too few points.*lower end_lr"):
        lr_suggestions(learner, num_it=40, show_plot=False, start_lr=10, end_lr=1e9)


def test_group_lrs_without_an_optimiser_says_how_to_get_one(learner):
    with pytest.raises(ValueError, match="create_opt"):
        group_lrs(learner)
    with pytest.raises(ValueError, match="no optimiser yet"):
        param_groups(learner)


def test_a_slice_gives_log_spaced_rates_that_group_lrs_reads_from_the_optimiser(learner):
    learner.create_opt()
    learner.opt.set_hyper("lr", slice(1e-4, 1e-2))
    assert group_lrs(learner) == pytest.approx([1e-4, 1e-3, 1e-2])


def test_group_lrs_during_fit_one_cycle_peaks_at_the_slice_for_each_group(learner, fastai):
    class Record(fastai["Callback"]):
        def before_fit(self): self.lrs = []
        def after_batch(self):
            if self.training: self.lrs.append(group_lrs(self.learn))
    record = Record()
    learner.fit_one_cycle(2, lr_max=slice(1e-5, 1e-3), cbs=record)
    lrs = torch.tensor(record.lrs, dtype=torch.float64)
    assert lrs.shape == (16, 3)                                   # 8 batches x 2 epochs, 3 groups
    assert lrs.max(0).values.tolist() == pytest.approx([1e-5, 1e-4, 1e-3], rel=1e-6)
    # 100 times apart at every batch
    assert (lrs[:, 2] / lrs[:, 0]).tolist() == pytest.approx([100] * 16, rel=1e-6)


def test_param_groups_counts_what_freeze_leaves_trainable(learner):
    learner.freeze()
    rows = param_groups(learner)
    assert [r["parameters"] for r in rows] == [4*8 + 8, 8*8 + 8, 8*2 + 2]
    # only the last group (the head) trains
    assert [r["trainable"] for r in rows] == [0, 0, 8*2 + 2]
    learner.unfreeze()
    assert all(r["trainable"] == r["parameters"] for r in param_groups(learner))
    assert [r["lr"] for r in param_groups(learner)] == group_lrs(learner)


def test_precision_mode_on_a_cpu_is_bf16_or_fp32_and_says_why():
    mode, why = precision_mode("cpu")
    assert mode in ("bf16", "fp32")
    assert why.startswith("CPU:" if mode == "bf16" else "cpu:")
    if mode == "bf16":
        assert "to_fp16()" in why   # tells the learner why fastai's fp16 is not used here


def test_precision_mode_picks_the_default_device_like_pytorch():
    mode, _ = precision_mode()
    assert (mode == "fp16") == torch.cuda.is_available()


def test_precision_mode_for_cuda_is_fp16_on_a_gpu_and_otherwise_names_the_problem_and_the_fix():
    if torch.cuda.is_available():
        mode, why = precision_mode("cuda")
        assert mode == "fp16" and "loss scaler" in why
    else:
        with pytest.raises(ValueError, match="no CUDA GPU.*use 'cpu'"):
            precision_mode("cuda")


@pytest.mark.parametrize("device", ["gpu0", 3.5])
def test_precision_mode_rejects_something_that_is_not_a_device(device):
    with pytest.raises(ValueError, match="torch device"):
        precision_mode(device)
