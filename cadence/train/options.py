"""Checks of the Trainer's arguments, run before anything is built so a bad value fails at construction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cadence.errors import ConfigError, require
from cadence.train.callback import Callback

__all__ = ["DIVERGENCE_MODES", "PROGRESS_MODES", "SCHEDULE_NAMES", "check_options", "check_positive"]

SCHEDULE_NAMES = ("lr", "momentum", "weight_decay")
DIVERGENCE_MODES = ("stop", "raise")
PROGRESS_MODES = ("auto", True, False, None, "bar", "lines", "off")


def check_options(
    *,
    loss_fn: Callable[[Any, Any], Any],
    epochs: int | None,
    total_steps: int | None,
    accumulation_steps: int,
    checkpoint_every_steps: int | None,
    checkpoint_every_epochs: int | None,
    eval_every_epochs: int | None,
    keep_checkpoints: int,
    schedules: Mapping[str, Any] | None,
    metrics: Sequence[str | Callable[[Any, Any], Any]],
    callbacks: Iterable[Callback],
    on_divergence: str,
    progress: str | bool | None,
    label_smoothing: float,
    grad_clip: float | None,
    tensorboard: bool,
) -> None:
    """Raise :class:`~cadence.errors.ConfigError` for the first invalid argument, in signature order."""
    if epochs is None and total_steps is None:
        raise ConfigError("Trainer: give epochs or total_steps (the number of optimizer updates)")
    check_positive("epochs", epochs)
    check_positive("total_steps", total_steps)
    check_positive("accumulation_steps", accumulation_steps)
    check_positive("checkpoint_every_steps", checkpoint_every_steps)
    check_positive("checkpoint_every_epochs", checkpoint_every_epochs)
    check_positive("eval_every_epochs", eval_every_epochs)
    check_positive("keep_checkpoints", keep_checkpoints)
    unknown = sorted(set(schedules or {}) - set(SCHEDULE_NAMES))
    if unknown:
        raise ConfigError(f"schedules: unknown hyperparameter(s) {unknown}; allowed: {list(SCHEDULE_NAMES)}")
    if on_divergence not in DIVERGENCE_MODES:
        raise ConfigError(f"on_divergence must be one of {list(DIVERGENCE_MODES)}, got {on_divergence!r}")
    if progress not in PROGRESS_MODES:
        raise ConfigError(f"progress must be 'auto', True or False, got {progress!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing=}")
    if grad_clip is not None and not grad_clip > 0:
        raise ConfigError(f"grad_clip must be a positive number or None, got {grad_clip=}")
    for metric in metrics:
        if not callable(metric) and metric != "accuracy":
            raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: 'accuracy' or a callable")
    if tensorboard:
        require("tensorboard", "tensorboard", "TensorBoard logging (tensorboard=True)")
    soft_sources = [f"label_smoothing={label_smoothing}"] if label_smoothing else []
    soft_sources += [type(c).__name__ for c in callbacks if getattr(c, "produces_soft_targets", False)]
    if soft_sources:
        # Imported here: only runs with soft targets need the regularization module.
        from cadence.regularization import check_soft_target_loss

        check_soft_target_loss(loss_fn, purpose=" and ".join(soft_sources))


def check_positive(name: str, value: int | None) -> None:
    """A positive ``int`` (not a ``bool``) or ``None``."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{name} must be a positive integer or None, got {name}={value!r}")
