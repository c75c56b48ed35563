"""Write scheduled hyperparameters into an optimizer's param groups.

This is the one place where schedules meet the optimizer. Nothing here keeps state, so there is nothing to
checkpoint: the values for a step are a pure function of that step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import torch

__all__ = ["ScheduleOrValue", "resolve", "set_hyperparams"]

ScheduleOrValue: TypeAlias = Callable[[int], float] | float | int


def resolve(value: ScheduleOrValue, step: int) -> float:
    """Return ``value(step)`` for a schedule, or the value itself for a constant."""
    if callable(value):
        return float(value(step))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a schedule (a callable step -> float) or a number, got {value!r}")


def _momentum_key(group: dict) -> str:
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    raise ValueError(
        "this optimizer has no momentum to schedule: its param groups have neither 'momentum' "
        "(SGD, RMSprop) nor 'betas' (Adam family); pass momentum=None"
    )


def set_hyperparams(
    optimizer: torch.optim.Optimizer,
    step: int,
    *,
    lr: ScheduleOrValue | None = None,
    momentum: ScheduleOrValue | None = None,
    weight_decay: ScheduleOrValue | None = None,
) -> dict[str, float]:
    """Write the values of the given schedules at ``step`` into every param group of ``optimizer``.

    ``lr`` is multiplied by each group's ``lr_scale`` (1.0 when absent), which is how discriminative
    per-layer-group learning rates are expressed. ``momentum`` goes to ``momentum`` (SGD, RMSprop) or to
    ``betas[0]`` (Adam, AdamW, ...). ``weight_decay`` is multiplied by the group's ``weight_decay_scale``
    (1.0 when absent; 0.0 exempts norms and biases). Arguments left as ``None`` are not touched.

    Returns the unscaled values written, e.g. ``{"lr": 0.1, "momentum": 0.9}``.

    Example::

        for step, (x, y) in enumerate(batches):
            set_hyperparams(optimizer, step, lr=schedule)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step=}")
    applied: dict[str, float] = {}
    if lr is not None:
        value = resolve(lr, step)
        for group in optimizer.param_groups:
            group["lr"] = value * group.get("lr_scale", 1.0)
        applied["lr"] = value
    if momentum is not None:
        value = resolve(momentum, step)
        for group in optimizer.param_groups:
            key = _momentum_key(group)
            if key == "momentum":
                group["momentum"] = value
            else:
                group["betas"] = (value, *tuple(group["betas"])[1:])
        applied["momentum"] = value
    if weight_decay is not None:
        value = resolve(weight_decay, step)
        for group in optimizer.param_groups:
            if "weight_decay" not in group:
                raise ValueError("this optimizer has no 'weight_decay' to schedule; pass weight_decay=None")
            group["weight_decay"] = value * group.get("weight_decay_scale", 1.0)
        applied["weight_decay"] = value
    return applied
