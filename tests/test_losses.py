"""Cross-entropy from scratch (htc_dl.losses, nbs/lessons/05_pet_breeds.ipynb): equal to PyTorch's,
and clear about bad input."""
import pytest
import torch
import torch.nn.functional as F
from htc_dl.losses import softmax, pick_target, cross_entropy, log_softmax, nll


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 37, generator=g) * 3, torch.randint(0, 37, (64,), generator=g)


def test_softmax_rows_are_probabilities_equal_to_torch_softmax(batch):
    acts, _ = batch
    probs = softmax(acts)
    assert (probs > 0).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(64))
    torch.testing.assert_close(probs, torch.softmax(acts, 1))


def test_softmax_does_not_overflow_on_huge_activations():
    torch.testing.assert_close(softmax(torch.tensor([[1000., 1000., -1000.]])),
                               torch.tensor([[0.5, 0.5, 0.]]))


def test_pick_target_takes_each_rows_value_at_its_class():
    values = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    assert pick_target(values, torch.tensor([2, 0])).tolist() == pytest.approx([0.7, 0.5])


def test_cross_entropy_equals_nll_loss_of_log_softmax_and_cross_entropy_loss(batch):
    acts, targets = batch
    ours = cross_entropy(acts, targets)
    torch.testing.assert_close(ours, F.nll_loss(torch.log_softmax(acts, 1), targets))
    torch.testing.assert_close(ours, torch.nn.CrossEntropyLoss()(acts, targets))


def test_cross_entropy_of_a_known_case_is_minus_log_of_the_target_probability():
    # activations (0, log 3): softmax (1/4, 3/4); target 1 -> -log(3/4)
    acts = torch.tensor([[0., torch.log(torch.tensor(3.)).item()]])
    assert cross_entropy(acts, torch.tensor([1])).item() == \
        pytest.approx(-torch.log(torch.tensor(0.75)).item(), abs=1e-6)


def test_cross_entropy_gradient_equals_pytorchs(batch):
    acts, targets = batch
    ours, theirs = acts.clone().requires_grad_(), acts.clone().requires_grad_()
    cross_entropy(ours, targets).backward()
    F.cross_entropy(theirs, targets).backward()
    torch.testing.assert_close(ours.grad, theirs.grad)


def test_log_softmax_and_nll_equal_pytorch_and_stay_finite_where_the_naive_loss_is_infinite(batch):
    acts, targets = batch
    torch.testing.assert_close(log_softmax(acts), torch.log_softmax(acts, 1))
    torch.testing.assert_close(nll(log_softmax(acts), targets),
                               F.nll_loss(torch.log_softmax(acts, 1), targets))
    extreme, first = torch.tensor([[0., 200.]]), torch.tensor([0])
    assert cross_entropy(extreme, first).isinf()                  # exp(-200) rounds to 0 in float32
    assert nll(log_softmax(extreme), first).item() == pytest.approx(200.)
    assert F.cross_entropy(extreme, first).item() == pytest.approx(200.)


def test_log_turns_099_to_0999_into_a_tenfold_smaller_loss():
    # the lesson's "why log": a tiny change in probability is a tenfold change in loss
    loss = lambda p: cross_entropy(torch.log(torch.tensor([[p, 1 - p]])), torch.tensor([0])).item()
    assert loss(0.99) == pytest.approx(0.01005, rel=1e-3)
    assert loss(0.99) / loss(0.999) == pytest.approx(10.05, rel=1e-2)


@pytest.mark.parametrize("acts, targets, error, message", [
    (torch.zeros(4), torch.zeros(4, dtype=torch.long), ValueError, "2-D tensor (batch, classes)"),
    (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), TypeError,
     "must be floats"),
    (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long), ValueError, "one class index per row"),
    (torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.long), ValueError, "one class index per row"),
    (torch.zeros(4, 3), torch.zeros(4), TypeError, "integer class indices"),
    (torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), ValueError,
     "from 0 to 2, got values from 0 to 3"),
    (torch.zeros(4, 3), torch.tensor([0, -1, 2, 1]), ValueError, "from 0 to 2"),
    ([[0., 1.]], torch.tensor([0]), ValueError, "2-D tensor"),
])
def test_bad_activations_or_targets_raise_a_message_that_names_the_problem(
        acts, targets, error, message):
    for loss in (cross_entropy, nll):
        with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
            loss(acts, targets)
