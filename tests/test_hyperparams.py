"""set_hyperparams: values per step, lr_scale and weight_decay_scale per group, clear errors."""

from __future__ import annotations

import pytest
import torch

from cadence.hyperparams import resolve, set_hyperparams


def _groups() -> list[dict]:
    weights = torch.nn.Parameter(torch.zeros(2))
    bias = torch.nn.Parameter(torch.zeros(1))
    return [{"params": [weights], "lr_scale": 0.25}, {"params": [bias], "weight_decay_scale": 0.0}]


def test_lr_is_scaled_per_group_and_weight_decay_exempted() -> None:
    optimizer = torch.optim.SGD(_groups(), lr=1.0, momentum=0.9, weight_decay=1e-4)
    applied = set_hyperparams(optimizer, 3, lr=lambda step: 0.1 * step, weight_decay=5e-4)
    assert applied == pytest.approx({"lr": 0.3, "weight_decay": 5e-4})
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.075)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.3)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(5e-4)
    assert optimizer.param_groups[1]["weight_decay"] == 0.0


def test_momentum_goes_to_betas_for_adam() -> None:
    optimizer = torch.optim.AdamW(_groups(), lr=1e-3, betas=(0.9, 0.999))
    set_hyperparams(optimizer, 0, momentum=0.85)
    assert all(group["betas"] == (0.85, 0.999) for group in optimizer.param_groups)


def test_optimizer_without_momentum_is_a_clear_error() -> None:
    optimizer = torch.optim.Adagrad(_groups(), lr=0.1)
    with pytest.raises(ValueError, match="no momentum to schedule"):
        set_hyperparams(optimizer, 0, momentum=0.9)


def test_negative_step_and_bad_values_are_rejected() -> None:
    optimizer = torch.optim.SGD(_groups(), lr=0.1)
    with pytest.raises(ValueError, match="step must be >= 0"):
        set_hyperparams(optimizer, -1, lr=0.1)
    with pytest.raises(TypeError, match="expected a schedule"):
        resolve("0.1", 0)  # type: ignore[arg-type]
