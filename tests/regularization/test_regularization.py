import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cadence.errors import ConfigError
from cadence.regularization import (
    check_soft_target_loss,
    cutmix_batch,
    mixup_batch,
    one_hot,
    soft_cross_entropy,
)


def test_one_hot_values_and_smoothing():
    targets = torch.tensor([2, 0])
    assert torch.equal(one_hot(targets, 4), torch.tensor([[0.0, 0, 1, 0], [1, 0, 0, 0]]))
    smoothed = one_hot(targets, 4, smoothing=0.2)
    assert torch.allclose(smoothed[0], torch.tensor([0.05, 0.05, 0.85, 0.05]))
    assert torch.allclose(smoothed.sum(dim=1), torch.ones(2))


def test_one_hot_smooths_soft_targets_too():
    soft = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    assert torch.allclose(one_hot(soft, 4, smoothing=0.4), torch.tensor([[0.4, 0.4, 0.1, 0.1]]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 3, "smoothing": 1.5}, "smoothing"),
        ({"num_classes": 2}, r"\[0, 1\]"),
    ],
)
def test_one_hot_rejects_bad_input(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        one_hot(torch.tensor([0, 2]), **kwargs)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_soft_cross_entropy_matches_torch(smoothing, reduction):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 7, generator=generator)
    labels = torch.randint(0, 7, (16,), generator=generator)
    expected = F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction=reduction)
    actual = soft_cross_entropy(logits, one_hot(labels, 7, smoothing=smoothing), reduction=reduction)
    assert torch.allclose(actual, expected, atol=1e-6)


def test_soft_cross_entropy_gradient_matches_torch():
    logits = torch.randn(8, 5, requires_grad=True)
    labels = torch.randint(0, 5, (8,))
    soft_cross_entropy(logits, one_hot(labels, 5, 0.1)).backward()
    reference = logits.detach().clone().requires_grad_()
    F.cross_entropy(reference, labels, label_smoothing=0.1).backward()
    assert torch.allclose(logits.grad, reference.grad, atol=1e-7)


def test_soft_cross_entropy_rejects_bad_input():
    with pytest.raises(ConfigError, match="reduction"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")
    with pytest.raises(ConfigError, match="shape"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))


def _batch(shape=(8, 3, 10, 12), classes=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator), torch.randint(
        0, classes, (shape[0],), generator=generator
    )


def test_mixup_shapes_mass_and_formula():
    x, y = _batch()
    mixed_x, targets = mixup_batch(x, y, 0.4, num_classes=5, generator=torch.Generator().manual_seed(1))
    assert mixed_x.shape == x.shape
    assert targets.shape == (8, 5)
    assert torch.allclose(targets.sum(dim=1), torch.ones(8))
    assert bool((targets.max(dim=1).values >= 0.5 - 1e-6).all())  # λ and 1-λ: one of them is >= 0.5


def test_mixup_is_deterministic_under_a_seeded_generator():
    x, y = _batch()
    first = mixup_batch(x, y, 0.2, num_classes=5, generator=torch.Generator().manual_seed(7))
    second = mixup_batch(x, y, 0.2, num_classes=5, generator=torch.Generator().manual_seed(7))
    third = mixup_batch(x, y, 0.2, num_classes=5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    assert not torch.equal(first[1], third[1])


def test_mixup_composes_with_smoothed_targets():
    x, y = _batch()
    smoothed = one_hot(y, 5, smoothing=0.1)
    _, targets = mixup_batch(x, smoothed, 0.2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(targets.sum(dim=1), torch.ones(8))
    assert float(targets.min()) >= 0.1 / 5 - 1e-6  # the smoothing floor survives mixing


def test_mixup_inputs_follow_the_target_weights():
    x = torch.arange(4.0).view(4, 1)
    y = torch.arange(4)
    mixed_x, targets = mixup_batch(x, y, 1.0, num_classes=4, generator=torch.Generator().manual_seed(0))
    # With inputs equal to class ids, the mixed input is the target-weighted mean of class ids.
    assert torch.allclose(mixed_x.view(-1), targets @ torch.arange(4.0), atol=1e-6)


@pytest.mark.parametrize("shape", [(8, 3, 10, 12), (8, 2, 40)])
@pytest.mark.parametrize("seed", range(5))
def test_cutmix_lambda_equals_pasted_area(shape, seed):
    x, y = _batch(shape, seed=seed)
    # Mark every input by its index so the pasted area can be counted exactly.
    x = torch.arange(shape[0], dtype=torch.float32).view(-1, *([1] * (len(shape) - 1))).expand(shape).clone()
    mixed_x, targets = cutmix_batch(x, y, 1.0, num_classes=5, generator=torch.Generator().manual_seed(seed))
    assert mixed_x.shape == x.shape
    assert torch.allclose(targets.sum(dim=1), torch.ones(shape[0]))
    pasted = (mixed_x[0] != x[0]).float().mean()
    own = one_hot(y, 5)[0]
    if pasted > 0:
        # target of row 0 = (1-a)·own + a·other with a the pasted fraction
        other = (targets[0] - (1 - pasted) * own) / pasted
        assert torch.allclose(other.sum(), torch.tensor(1.0), atol=1e-5)
        assert float(other.min()) >= -1e-5
    else:
        assert torch.allclose(targets[0], own)
    # All rows share the same box, so every changed row changed the same number of elements.
    changed = (mixed_x != x).flatten(1).float().mean(dim=1)
    assert bool(((changed == 0) | torch.isclose(changed, changed.max())).all())


def test_cutmix_pasted_fraction_matches_target_weight_exactly():
    # Two examples of different classes swapped by the permutation: weight of the other class = area.
    x = torch.stack([torch.zeros(1, 16, 16), torch.ones(1, 16, 16)])
    y = torch.tensor([0, 1])
    for seed in range(20):
        mixed_x, targets = cutmix_batch(
            x, y, 1.0, num_classes=2, generator=torch.Generator().manual_seed(seed)
        )
        area = float(mixed_x[0].mean())  # pixels pasted from example 1 (ones), or 0 if π(0) = 0
        if area > 0:
            assert targets[0, 1].item() == pytest.approx(area)
            assert targets[1, 0].item() == pytest.approx(float(1 - mixed_x[1].mean()))


@pytest.mark.parametrize("seed", range(10))
def test_cutmix_on_token_sequences_pastes_one_contiguous_span(seed):
    # (N, L) integer token ids: row i holds tokens 100·i .. 100·i + L - 1, so every position says its source.
    n, length = 4, 20
    x = torch.arange(length).repeat(n, 1) + 100 * torch.arange(n).unsqueeze(1)
    y = torch.arange(n)
    mixed_x, targets = cutmix_batch(x, y, 1.0, num_classes=n, generator=torch.Generator().manual_seed(seed))
    assert mixed_x.dtype == torch.long
    assert mixed_x.shape == (n, length)
    # The span the implementation must cut, from the same draws: λ, the permutation, the centre.
    generator = torch.Generator().manual_seed(seed)
    lam = float(np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator))).beta(1, 1))
    permutation = torch.randperm(n, generator=generator)
    size = round(length * (1 - lam))
    centre = int(torch.randint(0, length, (1,), generator=generator))
    low, high = max(0, centre - size // 2), min(length, centre + size - size // 2)
    expected = x.clone()
    expected[:, low:high] = x[permutation, low:high]
    assert torch.equal(mixed_x, expected)
    pasted = (high - low) / length
    assert torch.allclose(targets, one_hot(y, n) * (1 - pasted) + one_hot(y[permutation], n) * pasted)
    for row in range(n):  # every token stays at its position; the changed ones are one contiguous run
        assert torch.equal(mixed_x[row] % 100, torch.arange(length))
        changed = (mixed_x[row] != x[row]).nonzero().flatten().tolist()
        if changed:
            assert changed == list(range(changed[0], changed[-1] + 1))


def test_cutmix_rejects_flat_inputs():
    with pytest.raises(ConfigError, match="mixup instead"):
        cutmix_batch(torch.zeros(10), torch.zeros(10, dtype=torch.long), 1.0, num_classes=2)


def test_mixup_rejects_bad_alpha_and_missing_classes():
    x, y = _batch()
    with pytest.raises(ConfigError, match="alpha"):
        mixup_batch(x, y, 0.0, num_classes=5)
    with pytest.raises(ConfigError, match="num_classes"):
        mixup_batch(x, y, 0.2)


@pytest.mark.parametrize(
    "loss", [nn.NLLLoss(), nn.BCEWithLogitsLoss(), nn.BCELoss(), nn.MSELoss(), F.nll_loss]
)
def test_losses_without_soft_targets_are_rejected(loss):
    with pytest.raises(ConfigError, match="mixup") as error:
        check_soft_target_loss(loss, purpose="mixup")
    assert type(loss).__name__ in str(error.value) or "nll_loss" in str(error.value)


def test_soft_target_losses_are_accepted():
    for loss in (nn.CrossEntropyLoss(), F.cross_entropy, soft_cross_entropy, lambda logits, targets: 0):
        check_soft_target_loss(loss)
    with pytest.raises(ConfigError, match="ignore_index"):
        check_soft_target_loss(nn.CrossEntropyLoss(ignore_index=0))
