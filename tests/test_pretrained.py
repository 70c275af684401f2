"""htc_dl.pretrained (nbs/core/02_pretrained.ipynb): gradient checkpointing on a torchvision body
(resnet34 online, what fastai's vision_learner builds from it), where it changes how each stage
runs; the notebook checks the timm body."""
import copy
from types import SimpleNamespace

import pytest
import torch
import torchvision

from htc_dl.pretrained import activation_bytes, recompute_activations


def resnet_learner():
    """What vision_learner makes of a torchvision resnet18 (random weights): its body as
    nn.Sequential, then a small head."""
    torch.manual_seed(0)
    body = torch.nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])
    head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Dropout(0.5), torch.nn.Linear(512, 3))
    return SimpleNamespace(model=torch.nn.Sequential(body, head).train())


def one_step(model, x, y):
    """Every weight's gradient, then batch norm's running statistics, after one training batch
    (dropout seeded)."""
    model.train(); model.zero_grad(); torch.manual_seed(1)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return ([p.grad.clone() for p in model.parameters()]
            + [b.clone() for n, b in model.named_buffers() if "running" in n])


def test_checkpointing_halves_what_autograd_keeps_and_changes_no_gradient_or_statistic():
    plain, x, y = resnet_learner(), torch.randn(4, 3, 128, 128), torch.tensor([0, 1, 2, 0])
    learn = SimpleNamespace(model=copy.deepcopy(plain.model))
    recompute_activations(learn)
    for a, b in zip(one_step(plain.model, x, y), one_step(learn.model, x, y)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # layer1 to layer4 recompute; the stem keeps its own
    assert activation_bytes(learn.model, x) < 0.6 * activation_bytes(plain.model, x)
    learn.model.eval()
    with torch.no_grad(): assert learn.model(x).shape == (4, 3)   # inference is unchanged


def test_activation_bytes_counts_activations_not_weights():
    layer = torch.nn.Linear(1000, 10)
    x = torch.randn(8, 1000, requires_grad=True)
    # the input, kept for the weight's gradient; the 40 kB weight is not counted
    assert activation_bytes(layer, x) == 8 * 1000 * 4


def test_a_body_without_stages_is_refused_with_the_reason():
    with pytest.raises(TypeError, match="cannot checkpoint a Linear body: it has no stages"):
        recompute_activations(SimpleNamespace(model=torch.nn.Sequential(torch.nn.Linear(2, 2))))


def test_converting_the_lite0_checkpoint_leaves_the_random_state_alone(tmp_path, monkeypatch):
    "A seeded lesson trains the same whether or not this run is the one that converts the weights."
    from htc_dl.pretrained import lite0_checkpoint
    monkeypatch.setenv("HTC_DL_MODELS", str(tmp_path))
    torch.manual_seed(0)
    converted = lite0_checkpoint()
    after_converting = torch.rand(3)
    torch.manual_seed(0)
    assert lite0_checkpoint() == converted and converted.parent == tmp_path   # now only read
    torch.testing.assert_close(torch.rand(3), after_converting)
    torch.manual_seed(0)
    torch.testing.assert_close(torch.rand(3), after_converting)
