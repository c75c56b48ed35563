"""TensorFlow Addons' cyclical learning rates for Keras 3, with its class and argument names.

TensorFlow Addons (``tfa.optimizers``) is no longer maintained and does not work with Keras 3. These classes
take the same arguments and give the same values::

    cycle = floor(1 + step / (2 · step_size))
    x     = |step / step_size - 2 · cycle + 1|
    lr    = initial_learning_rate + (maximal_learning_rate - initial_learning_rate) · max(0, 1 - x) · scale

with ``scale = scale_fn(cycle)`` (``scale_mode="cycle"``, cycles counted from 1) or ``scale_fn(step)``
(``scale_mode="iterations"``). The value is computed with ``keras.ops`` in float32, so it is a tensor
function of the step and works in graph mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cadence.keras._keras import keras

__all__ = [
    "SCALE_MODES",
    "CyclicalLearningRate",
    "ExponentialCyclicalLearningRate",
    "Triangular2CyclicalLearningRate",
    "TriangularCyclicalLearningRate",
]

#: what ``scale_fn`` is applied to
SCALE_MODES = ("cycle", "iterations")

ops = keras.ops


def _check_number(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (positive and number <= 0) or number < 0:
        allowed = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def _registered(function: Callable[..., Any]) -> bool:
    """Whether Keras can save ``function`` by name (registered with ``register_keras_serializable``)."""
    name = keras.saving.get_registered_name(function)
    return keras.saving.get_registered_object(name) is function


@keras.saving.register_keras_serializable(package="cadence")
class CyclicalLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """TensorFlow Addons' ``CyclicalLearningRate``: a triangle wave scaled by ``scale_fn``.

    ``step_size`` is the number of steps from ``initial_learning_rate`` up to ``maximal_learning_rate``
    (half a cycle; cadence's ``cyclic(step_size_up=...)``). ``scale_fn`` gets a float32 tensor (the cycle
    number or the step, by ``scale_mode``) and returns the amplitude's scale; write it with ``keras.ops``
    or plain arithmetic.

    Saving: a model whose optimizer uses this class saves only if ``scale_fn`` was registered with
    ``keras.saving.register_keras_serializable`` (a lambda or a local function cannot be stored; TensorFlow
    Addons' ``get_config`` returned the function itself, which Keras 3 cannot write either). The three
    subclasses have no ``scale_fn`` argument and always save.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_fn: Callable[[Any], Any],
        scale_mode: str = "cycle",
        name: str = "CyclicalLearningRate",
    ) -> None:
        super().__init__()
        if isinstance(scale_fn, dict | str):  # as get_config stores a registered function
            scale_fn = keras.saving.deserialize_keras_object(scale_fn)
        if not callable(scale_fn):
            raise TypeError(f"scale_fn must be a callable x -> scale, got {scale_fn!r}")
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {', '.join(SCALE_MODES)}, got {scale_mode!r}")
        self.initial_learning_rate = _check_number("initial_learning_rate", initial_learning_rate)
        self.maximal_learning_rate = _check_number("maximal_learning_rate", maximal_learning_rate)
        self.step_size = _check_number("step_size", step_size, positive=True)
        self.scale_fn = scale_fn
        self.scale_mode = scale_mode
        self.name = name

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        cycle = ops.floor(1.0 + step / (2.0 * self.step_size))
        x = ops.abs(step / self.step_size - 2.0 * cycle + 1.0)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else step)
        amplitude = self.maximal_learning_rate - self.initial_learning_rate
        return self.initial_learning_rate + amplitude * ops.maximum(0.0, 1.0 - x) * scale

    def _shape_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "scale_mode": self.scale_mode,
            "name": self.name,
        }

    def get_config(self) -> dict[str, Any]:
        if not _registered(self.scale_fn):
            raise TypeError(
                f"{type(self).__name__} cannot be saved with scale_fn={self.scale_fn!r}: Keras stores only "
                "functions registered with @keras.saving.register_keras_serializable(). Register the "
                "function, or use TriangularCyclicalLearningRate, Triangular2CyclicalLearningRate or "
                "ExponentialCyclicalLearningRate, which always save"
            )
        return {**self._shape_config(), "scale_fn": keras.saving.serialize_keras_object(self.scale_fn)}


def _triangular_scale(x: Any) -> Any:
    return ops.ones_like(x)


def _triangular2_scale(x: Any) -> Any:
    return ops.power(0.5, x - 1.0)


@keras.saving.register_keras_serializable(package="cadence")
class TriangularCyclicalLearningRate(CyclicalLearningRate):
    """Constant amplitude (``scale_fn = 1``): cadence's ``cyclic(mode="triangular")``."""

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str = "cycle",
        name: str = "TriangularCyclicalLearningRate",
    ) -> None:
        super().__init__(
            initial_learning_rate, maximal_learning_rate, step_size, _triangular_scale, scale_mode, name
        )

    def get_config(self) -> dict[str, Any]:
        return self._shape_config()


@keras.saving.register_keras_serializable(package="cadence")
class Triangular2CyclicalLearningRate(CyclicalLearningRate):
    """The amplitude halves every cycle (``scale_fn(c) = 1 / 2^(c - 1)``): ``cyclic(mode="triangular2")``.

    As in TensorFlow Addons, ``scale_mode="iterations"`` applies the same function to the step instead.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str = "cycle",
        name: str = "Triangular2CyclicalLearningRate",
    ) -> None:
        super().__init__(
            initial_learning_rate, maximal_learning_rate, step_size, _triangular2_scale, scale_mode, name
        )

    def get_config(self) -> dict[str, Any]:
        return self._shape_config()


@keras.saving.register_keras_serializable(package="cadence")
class ExponentialCyclicalLearningRate(CyclicalLearningRate):
    """The amplitude scaled by ``gamma^step`` (default ``scale_mode="iterations"``): ``mode="exp_range"``.

    With ``scale_mode="cycle"`` the scale is ``gamma^cycle``, as in TensorFlow Addons.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        maximal_learning_rate: float,
        step_size: float,
        scale_mode: str = "iterations",
        gamma: float = 1.0,
        name: str = "ExponentialCyclicalLearningRate",
    ) -> None:
        self.gamma = _check_number("gamma", gamma, positive=True)
        super().__init__(
            initial_learning_rate, maximal_learning_rate, step_size, self._exponential_scale, scale_mode, name
        )

    def _exponential_scale(self, x: Any) -> Any:
        # exp(x · ln γ) with ln γ from float64: γ itself rounded to float32 would be off by x · 3e-8 relative
        return ops.exp(x * math.log(self.gamma))

    def get_config(self) -> dict[str, Any]:
        return {**self._shape_config(), "gamma": self.gamma}
