"""find_lr leaves model, optimizer, gradients and RNG exactly as it found them, whatever happens."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

from cadence.lr_finder import find_lr
from tests.lr_finder.conftest import draw_random_numbers


class Checkpoint:
    """Everything find_lr must restore, captured before the sweep and compared with torch.equal after."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model_state = copy.deepcopy(model.state_dict())
        self.gradients = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        self.training = [m.training for m in model.modules()]
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())
        self.rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        self.expected_draws = draw_random_numbers()
        torch.set_rng_state(self.rng[0])
        np.random.set_state(self.rng[1])
        random.setstate(self.rng[2])

    def assert_restored(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        state = model.state_dict()
        assert state.keys() == self.model_state.keys()
        for key, value in self.model_state.items():
            assert torch.equal(state[key], value), key  # includes BatchNorm running stats and counter
        for parameter, gradient in zip(model.parameters(), self.gradients):
            assert (parameter.grad is None) == (gradient is None)
            if gradient is not None:
                assert torch.equal(parameter.grad, gradient)
        assert [m.training for m in model.modules()] == self.training
        restored = optimizer.state_dict()
        assert restored["param_groups"] == self.optimizer_state["param_groups"]  # lr, momentum, lr_scale, ...
        assert restored["state"].keys() == self.optimizer_state["state"].keys()
        for index, entries in self.optimizer_state["state"].items():
            assert entries.keys() == restored["state"][index].keys()
            for name, value in entries.items():
                other = restored["state"][index][name]
                assert torch.equal(torch.as_tensor(other), torch.as_tensor(value)), (index, name)
        assert draw_random_numbers() == self.expected_draws


def test_restored_after_a_full_sweep(model, optimizer, batches):
    checkpoint = Checkpoint(model, optimizer)
    result = find_lr(
        model, optimizer, nn.functional.cross_entropy, batches, end_lr=0.5, num_steps=20, progress=False
    )
    assert result.stop_reason == "completed"
    assert len(result.lrs) == 20
    checkpoint.assert_restored(model, optimizer)


def test_restored_after_divergence(model, optimizer, batches):
    checkpoint = Checkpoint(model, optimizer)
    result = find_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        start_lr=1e-2,
        end_lr=1e6,
        num_steps=40,
        smoothing=0.5,
        progress=False,
    )
    assert result.stop_reason in ("diverged", "non_finite")
    assert len(result.lrs) < 40
    checkpoint.assert_restored(model, optimizer)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_restored_after_an_error_mid_sweep(model, optimizer, batches, error):
    checkpoint = Checkpoint(model, optimizer)
    calls = []

    def failing_loss(outputs, targets):
        calls.append(1)
        if len(calls) == 7:
            raise error("stop here")
        return nn.functional.cross_entropy(outputs, targets)

    with pytest.raises(error, match="stop here"):
        find_lr(model, optimizer, failing_loss, batches, num_steps=20, progress=False)
    assert len(calls) == 7
    checkpoint.assert_restored(model, optimizer)


def test_restored_with_adam_eval_mode_and_no_prior_state(batches):
    from tests.lr_finder.conftest import make_model

    model = make_model(1)
    model[1].eval()  # a frozen BatchNorm stays frozen afterwards
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    checkpoint = Checkpoint(model, optimizer)
    find_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        num_steps=12,
        repeats=2,
        weight_decays=[0.0, 0.1],
        progress=False,
    )
    checkpoint.assert_restored(model, optimizer)
    assert optimizer.state_dict()["state"] == {}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_sweeps_and_restores(model, optimizer, batches, precision):
    checkpoint = Checkpoint(model, optimizer)
    result = find_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        end_lr=1.0,
        num_steps=15,
        precision=precision,
        progress=False,
    )
    assert len(result.lrs) == 15
    assert all(np.isfinite(result.losses))
    checkpoint.assert_restored(model, optimizer)


def test_sweep_is_reproducible_and_independent_of_the_global_seed(model, optimizer, batches):
    torch.manual_seed(1)
    first = find_lr(model, optimizer, nn.functional.cross_entropy, batches, num_steps=15, progress=False)
    torch.manual_seed(2)
    second = find_lr(model, optimizer, nn.functional.cross_entropy, batches, num_steps=15, progress=False)
    assert first.losses == second.losses
