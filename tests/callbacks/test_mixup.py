import pytest
import torch
from torch import nn

from cadence.callbacks.mixup import Mixup, mixing_generator
from cadence.errors import ConfigError
from cadence.regularization import one_hot
from cadence.train.state import TrainState


def _state(step=3, batch_index=1, seed=0, total_steps=100, num_classes=5, batch=None):
    model = nn.Linear(4, 5)
    state = TrainState(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        total_steps=total_steps,
        steps_per_epoch=10,
        step=step,
        batch_index=batch_index,
        seed=seed,
        num_classes=num_classes,
    )
    generator = torch.Generator().manual_seed(42)
    state.batch = batch or (
        torch.randn(8, 2, 6, 6, generator=generator),
        torch.randint(0, 5, (8,), generator=generator),
    )
    return state


@pytest.mark.parametrize("callback", [Mixup(0.2), Mixup(0.0, cutmix_alpha=1.0), Mixup(0.4, cutmix_alpha=1.0)])
def test_same_clock_gives_the_same_batch(callback):
    first, second = _state(), _state()
    callback.on_batch_start(first)
    Mixup(**{k: getattr(callback, k) for k in ("alpha", "cutmix_alpha", "switch_prob")}).on_batch_start(
        second
    )
    assert torch.equal(first.batch[0], second.batch[0])
    assert torch.equal(first.batch[1], second.batch[1])
    assert torch.allclose(first.batch[1].sum(dim=1), torch.ones(8))


@pytest.mark.parametrize("field", ["step", "batch_index", "seed"])
def test_a_different_clock_gives_a_different_batch(field):
    first, second = _state(), _state(**{field: 9})
    Mixup(1.0).on_batch_start(first)
    Mixup(1.0).on_batch_start(second)
    assert not torch.equal(first.batch[1], second.batch[1])


def test_mixing_generator_is_a_pure_function_of_the_clock():
    a = torch.rand(5, generator=mixing_generator(1, 2, 3))
    b = torch.rand(5, generator=mixing_generator(1, 2, 3))
    c = torch.rand(5, generator=mixing_generator(1, 3, 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_mixup_keeps_smoothed_targets_and_global_rng_untouched():
    state = _state()
    x, y = state.batch
    state.batch = (x, one_hot(y, 5, smoothing=0.1))
    before = torch.get_rng_state()
    Mixup(0.2).on_batch_start(state)
    assert torch.equal(before, torch.get_rng_state())
    assert float(state.batch[1].min()) >= 0.02 - 1e-6
    assert torch.allclose(state.batch[1].sum(dim=1), torch.ones(8))


@pytest.mark.parametrize(("until_step", "mixed_at_50"), [(None, True), (50, False), (51, True), (0.5, False)])
def test_until_step(until_step, mixed_at_50):
    state = _state(step=50, total_steps=100)
    labels = state.batch[1]
    Mixup(0.2, until_step=until_step).on_batch_start(state)
    assert (state.batch[1] is not labels) == mixed_at_50


def test_switch_prob_picks_cutmix_or_mixup():
    counts = {"cutmix": 0, "mixup": 0}
    for step in range(40):
        state = _state(step=step)
        x = state.batch[0]
        Mixup(0.4, cutmix_alpha=1.0, switch_prob=0.5).on_batch_start(state)
        # CutMix leaves some input values untouched exactly; mixup changes all of them (λ < 1).
        untouched = (state.batch[0] == x).float().mean()
        counts["cutmix" if untouched > 0 else "mixup"] += 1
    assert counts["cutmix"] > 5
    assert counts["mixup"] > 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "both are 0"),
        ({"alpha": -1.0}, "alpha"),
        ({"switch_prob": 2.0}, "switch_prob"),
        ({"until_step": 1.5}, "until_step"),
        ({"until_step": "end"}, "until_step"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Mixup(**kwargs)


def test_integer_labels_need_num_classes():
    state = _state(num_classes=None)
    with pytest.raises(ConfigError, match="num_classes"):
        Mixup(0.2).on_batch_start(state)
