"""cadence schedules in Keras 3 (``pip install cadence[keras]``; any backend).

:class:`CadenceSchedule` turns a cadence schedule into a ``keras.optimizers.schedules.LearningRateSchedule``
that serialises with the model (``get_config`` stores :func:`cadence.schedules.to_config` of the schedule).
The step is looked up in a float32 table of the schedule's values, so the LR is a pure tensor function of the
optimizer's iteration count and works in graph mode (``jit_compile=True``). Tested with the torch backend.

    from cadence.keras import CadenceSchedule
    from cadence.schedules import one_cycle

    optimizer = keras.optimizers.SGD(learning_rate=CadenceSchedule(one_cycle(max_lr=0.1, total_steps=1000)))
"""

from __future__ import annotations

from typing import Any

from cadence.errors import MissingDependencyError

try:
    import keras
except ModuleNotFoundError as error:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("cadence.keras needs Keras 3: pip install 'cadence[keras]'") from error

__all__ = ["CadenceSchedule"]


@keras.saving.register_keras_serializable(package="cadence")
class CadenceSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A cadence schedule as a Keras learning-rate schedule: ``lr(step) == schedule(step)``.

    ``steps`` is the length of the value table (default: the schedule's ``total_steps`` or ``steps``; give
    it for schedules without a length, e.g. cyclic); steps past it keep the last value.
    """

    def __init__(self, schedule: Any, steps: int | None = None) -> None:
        from cadence.schedules import Schedule, from_config

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
        from cadence.schedules import to_config

        return {"schedule": to_config(self.schedule), "steps": self.steps}
