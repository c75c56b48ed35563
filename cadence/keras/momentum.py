"""Momentum / β1 from a cadence schedule, set on a Keras 3 optimizer before every batch."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from cadence.keras._keras import keras
from cadence.schedules import from_config

__all__ = ["MOMENTUM_ATTRIBUTES", "MomentumScheduler"]

#: optimizer attribute -> the Keras optimizers that have it
MOMENTUM_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "momentum": ("SGD", "RMSprop"),
    "beta_1": ("Adam", "AdamW", "Adamax", "Nadam", "Lamb", "Lion"),
}


def _allowed() -> str:
    return "; ".join(f"{name} ({', '.join(owners)})" for name, owners in MOMENTUM_ATTRIBUTES.items())


class MomentumScheduler(keras.callbacks.Callback):
    """Set the optimizer's ``momentum`` (SGD, RMSprop) or ``beta_1`` (Adam, AdamW, ...) from a schedule.

    Before every batch the value is ``schedule(optimizer.iterations)``: the step the optimizer is about to
    take, the same count a ``LearningRateSchedule`` gets. So LR and momentum schedules built for the same
    run stay in step, and training resumed from a saved model (whose optimizer keeps its iteration count)
    continues the momentum where it stopped. The value at the end of each epoch is logged as
    ``logs["momentum"]`` or ``logs["beta_1"]``.

    ``schedule`` is a cadence schedule (e.g. ``one_cycle_momentum(total_steps)``), its config dict, or any
    callable ``step -> float`` with values in [0, 1]. ``attribute`` picks ``"momentum"`` or ``"beta_1"``
    (default: whichever the optimizer has). A ``LossScaleOptimizer`` is looked through to its inner optimizer.

    Keras optimizers take no callable ``beta_1`` (it fails with ``Invalid dtype: object``), which is why
    this is a callback. With the torch backend the new value takes effect at once; with JAX or TensorFlow the
    train step is compiled with the value it was traced with, so those backends need
    ``model.compile(run_eagerly=True)`` (a warning says so). With ``steps_per_execution=k`` Keras calls
    callbacks once per ``k`` steps, so the value changes every ``k`` steps. With
    ``gradient_accumulation_steps`` Keras gives a ``LearningRateSchedule`` the count of batches while
    ``iterations`` counts updates; this callback follows ``iterations``.
    """

    def __init__(
        self,
        schedule: Callable[[int], float] | dict[str, Any],
        attribute: str | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(schedule, dict):
            schedule = from_config(schedule)
        if not callable(schedule):
            raise TypeError(
                f"schedule must be a cadence schedule, its config or step -> float, got {schedule!r}"
            )
        if attribute is not None and attribute not in MOMENTUM_ATTRIBUTES:
            raise ValueError(
                f"attribute must be one of {', '.join(MOMENTUM_ATTRIBUTES)} or None, got {attribute!r}"
            )
        self.schedule = schedule
        self.attribute = attribute
        self.verbose = verbose
        self.value: float | None = None  # the value set for the latest batch

    def _optimizer(self) -> tuple[Any, str]:
        optimizer = self.model.optimizer
        if optimizer is None:
            raise ValueError("MomentumScheduler needs a compiled model (model.compile(optimizer=...))")
        candidates = [optimizer]
        inner = getattr(optimizer, "inner_optimizer", None)  # LossScaleOptimizer
        if inner is not None:
            candidates.append(inner)
        names = [self.attribute] if self.attribute is not None else list(MOMENTUM_ATTRIBUTES)
        for candidate in candidates:
            for name in names:
                if isinstance(getattr(candidate, name, None), int | float):
                    return candidate, name
        wanted = f"{self.attribute!r} attribute" if self.attribute else "momentum or beta_1 attribute"
        raise ValueError(
            f"MomentumScheduler cannot schedule {type(optimizer).__name__}: it has no {wanted}. "
            f"Allowed: {_allowed()}"
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        optimizer, name = self._optimizer()
        if name == "momentum" and float(getattr(optimizer, name)) == 0.0:
            raise ValueError(
                f"{type(optimizer).__name__} was created with momentum=0.0, so Keras keeps no momentum "
                "buffers to schedule; create it with momentum > 0 (e.g. momentum=0.9)"
            )
        if keras.backend.backend() != "torch" and not self.model.run_eagerly:
            warnings.warn(
                f"MomentumScheduler with the {keras.backend.backend()} backend: the compiled train step "
                f"keeps the {name} it was traced with; use model.compile(..., run_eagerly=True)",
                stacklevel=2,
            )

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        optimizer, name = self._optimizer()
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        value = float(self.schedule(step))
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"the schedule gave {name}={value!r} at step {step}; it must be in [0, 1]")
        setattr(optimizer, name, value)
        if self.verbose and value != self.value:
            print(f"step {step}: MomentumScheduler sets {name} to {value:.6g}")
        self.value = value

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None and self.value is not None:
            logs[self._optimizer()[1]] = self.value
