"""Stop training when a monitored metric stops improving."""

from __future__ import annotations

import math
from typing import Any

from cadence.errors import ConfigError
from cadence.train.callback import Callback
from cadence.train.state import TrainState

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Set ``state.should_stop`` after ``patience`` evaluations without improvement of ``monitor``.

    An evaluation improves on the best value so far when ``value < best - min_delta`` (``mode="min"``) or
    ``value > best + min_delta`` (``mode="max"``). The check runs in ``on_eval_end``, so the Trainer finishes
    the current epoch (``on_epoch_end``, checkpoint) and then stops with status ``"stopped"``.

    Example::

        Trainer(..., eval_data=val, callbacks=[EarlyStopping("val_loss", patience=3, min_delta=1e-3)])

    Its state (best value, evaluations without improvement) is checkpointed, so a resumed run stops where
    an uninterrupted one would.
    """

    def __init__(
        self, monitor: str = "val_loss", mode: str = "min", patience: int = 3, min_delta: float = 0.0
    ) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ConfigError(f"EarlyStopping: patience must be a positive integer, got {patience=}")
        if not min_delta >= 0:
            raise ConfigError(f"EarlyStopping: min_delta must be >= 0, got {min_delta=}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = float(min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self.best_step = -1
        self.evaluations_without_improvement = 0
        self.stopped_step: int | None = None

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, patience={self.patience}, "
            f"min_delta={self.min_delta})"
        )

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_eval_end(self, state: TrainState) -> None:
        if self.monitor not in state.metrics:
            raise ConfigError(
                f"EarlyStopping: monitor={self.monitor!r} is not among the evaluation metrics "
                f"{sorted(state.metrics)}"
            )
        value = float(state.metrics[self.monitor])
        if self.improved(value):
            self.best, self.best_step = value, state.step
            self.evaluations_without_improvement = 0
            return
        self.evaluations_without_improvement += 1
        if self.evaluations_without_improvement >= self.patience:
            state.should_stop = True
            self.stopped_step = state.step
            state.stop_reason = (
                f"early stopping: {self.monitor} did not improve on {self.best:.6g} (step {self.best_step}) "
                f"for {self.patience} evaluation(s)"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_step": self.best_step,
            "evaluations_without_improvement": self.evaluations_without_improvement,
            "stopped_step": self.stopped_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict["best"])
        self.best_step = int(state_dict["best_step"])
        self.evaluations_without_improvement = int(state_dict["evaluations_without_improvement"])
        self.stopped_step = state_dict.get("stopped_step")
