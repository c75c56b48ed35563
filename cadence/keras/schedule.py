"""A cadence schedule as a Keras 3 ``LearningRateSchedule`` (a float32 table over the steps)."""

from __future__ import annotations

from typing import Any

from cadence.keras._keras import keras
from cadence.schedules import Schedule, from_config, to_config

__all__ = ["CadenceSchedule"]


@keras.saving.register_keras_serializable(package="cadence")
class CadenceSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A cadence schedule as a Keras learning-rate schedule: ``lr(step) == schedule(step)``.

    ``steps`` is the length of the value table (default: the schedule's ``total_steps`` or ``steps``; give
    it for schedules without a length, e.g. cyclic); steps past it keep the last value.
    """

    def __init__(self, schedule: Schedule | dict[str, Any], steps: int | None = None) -> None:
        if isinstance(schedule, dict):
            schedule = from_config(schedule)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a cadence schedule or its config, got {schedule!r}")
        if steps is None:
            steps = getattr(schedule, "total_steps", None) or getattr(schedule, "steps", None)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1 for {schedule!r}, got {steps!r}")
        self.schedule = schedule
        self.steps = steps
        self._table = keras.ops.convert_to_tensor(
            [float(schedule(step)) for step in range(steps)], dtype="float32"
        )

    def __call__(self, step: Any) -> Any:
        index = keras.ops.clip(keras.ops.cast(step, "int32"), 0, self.steps - 1)
        return keras.ops.take(self._table, index)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": to_config(self.schedule), "steps": self.steps}
