"""Cyclical learning rates (torch's ``CyclicLR``) and the momentum cycled opposite to them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cadence.errors import ConfigError
from cadence.schedules.base import AUTO, Recipe, Schedule, check_choice, check_integer, check_lr, check_number
from cadence.schedules.combinators import Repeat, Sequence
from cadence.schedules.primitives import Linear

__all__ = ["CYCLIC_MODES", "Cyclic", "CyclicMomentum", "cyclic", "cyclic_momentum"]

#: named CyclicLR modes; a custom ``scale_fn`` replaces them
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def _triangle(step_size_up: float, step_size_down: float) -> Repeat:
    """The unit triangle wave: 0 -> 1 over ``step_size_up``, 1 -> 0 over ``step_size_down``, repeated."""
    return Repeat(Sequence((Linear(0.0, 1.0, step_size_up), Linear(1.0, 0.0, step_size_down))))


@dataclass(frozen=True, repr=False)
class _ScaledTriangle(Schedule):
    """``low + (high - low) · wave(t) · scale`` with CyclicLR's amplitude scaling (shared by LR and momentum).

    ``scale`` is ``scale_fn(cycle)`` (cycle counted from 1) or ``scale_fn(step)`` depending on ``scale_mode``;
    the named modes set both, as torch does.
    """

    call_name = "cyclic_wave"
    low: float
    high: float
    step_size_up: int
    step_size_down: int
    mode: str
    gamma: float
    scale_fn: Callable[[float], float] | None
    scale_mode: str
    wave: Repeat = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wave", _triangle(self.step_size_up, self.step_size_down))

    def scale(self, cycle: int, t: float) -> float:
        if self.scale_fn is not None:
            argument = cycle if self.scale_mode == "cycle" else (int(t) if float(t).is_integer() else t)
            return float(self.scale_fn(argument))
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (cycle - 1))
        return self.gamma ** (int(t) if float(t).is_integer() else t)  # exp_range scales per iteration

    def at(self, t: float) -> float:
        wave = self.wave
        cycle = wave.cycle_at(t)[0] + 1
        return self.low + (self.high - self.low) * wave.at(t) * self.scale(cycle, t)

    @property
    def duration(self) -> float:
        return math.inf

    def breakpoints(self, until: float) -> list[float]:
        return self.wave.breakpoints(until)


def _check_cyclic_shape(
    step_size_up: int, step_size_down: int | None, mode: str, gamma: float, scale_fn: Any, scale_mode: str
) -> None:
    check_integer("step_size_up", step_size_up, low=1)
    if step_size_down is not None:
        check_integer("step_size_down", step_size_down, low=1)
    check_choice("scale_mode", scale_mode, ("cycle", "iterations"))
    if scale_fn is None:
        check_choice("mode", mode, CYCLIC_MODES)
    elif not callable(scale_fn):
        raise ConfigError(f"scale_fn must be a callable x -> float in [0, 1] or None, got {scale_fn=}")
    check_number("gamma", gamma, low=0.0, high=1.0, low_open=True)


class _CyclicBase(Recipe):
    """Shared cycle bookkeeping of :class:`Cyclic` and :class:`CyclicMomentum`."""

    step_size_up: int
    step_size_down: int | None
    mode: str
    gamma: float
    scale_fn: Callable[[float], float] | None
    scale_mode: str

    def _wave(self, low: float, high: float) -> _ScaledTriangle:
        down = self.step_size_up if self.step_size_down is None else self.step_size_down
        return _ScaledTriangle(
            low, high, self.step_size_up, down, self.mode, self.gamma, self.scale_fn, self.scale_mode
        )

    def cycle_ends(self, total_steps: int) -> list[int]:
        """Last step ``k · (step_size_up + step_size_down) - 1`` of each full cycle before ``total_steps``.

        That update closes the descending half; the next one starts the next cycle at ``base_lr``.
        """
        down = self.step_size_up if self.step_size_down is None else self.step_size_down
        return _triangle(self.step_size_up, down).cycle_ends(total_steps)


@dataclass(frozen=True, repr=False)
class Cyclic(_CyclicBase):
    """Cyclical learning rates: a triangle wave between ``base_lr`` and ``max_lr`` (torch's ``CyclicLR``).

    With ``c = floor(1 + t / (up + down))`` the cycle number and ``w(t)`` the unit triangle (0 at the cycle
    start, 1 after ``step_size_up`` steps, back to 0 after ``step_size_down`` more)::

        lr(t) = base_lr + (max_lr - base_lr) · w(t) · scale

    where ``scale`` is 1 (``"triangular"``), ``1 / 2^(c - 1)`` (``"triangular2"``), ``gamma^t``
    (``"exp_range"``), or a custom ``scale_fn`` of ``c`` (``scale_mode="cycle"``) or of ``t``
    (``"iterations"``). As in torch, ``scale_mode`` only applies to a custom ``scale_fn``. Equal to torch's
    ``CyclicLR`` and to TensorFlow Addons' ``CyclicalLearningRate`` (its ``step_size`` is ``step_size_up``).
    A custom ``scale_fn`` works in code but cannot be stored in a config (nor pickled, if it is a lambda).

    The momentum that torch cycles opposite to the LR (``cycle_momentum=True``) is :meth:`momentum`.

    Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017 (arXiv:1506.01186).
    """

    call_name = "cyclic"
    lr_fields = ("base_lr", "max_lr")
    base_lr: float | str
    max_lr: float | str
    step_size_up: int = 2000
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    scale_fn: Callable[[float], float] | None = None
    scale_mode: str = "cycle"
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_lr("base_lr", self.base_lr, allow_auto=True, allow_zero=True)
        check_lr("max_lr", self.max_lr, allow_auto=True)
        if self.base_lr == AUTO and self.max_lr != AUTO:
            raise ConfigError(
                "base_lr='auto' is derived from max_lr (max_lr / 4), so max_lr must be 'auto' too, "
                f"got max_lr={self.max_lr!r}"
            )
        if AUTO not in (self.base_lr, self.max_lr) and self.base_lr > self.max_lr:  # type: ignore[operator]
            raise ConfigError(f"base_lr must be <= max_lr, got {self.base_lr=} and {self.max_lr=}")
        _check_cyclic_shape(
            self.step_size_up, self.step_size_down, self.mode, self.gamma, self.scale_fn, self.scale_mode
        )

    def build(self) -> Schedule:
        max_lr = self.lr("max_lr")
        base_lr = max_lr / 4 if self.base_lr == AUTO else float(self.base_lr)
        return self._wave(base_lr, max_lr)

    def with_lr(self, max_lr: float) -> Cyclic:
        """Replace ``max_lr="auto"`` by ``max_lr``; an ``"auto"`` ``base_lr`` becomes ``max_lr / 4``."""
        check_lr("max_lr", max_lr)
        changes: dict[str, float] = {}
        if self.max_lr == AUTO:
            changes["max_lr"] = max_lr
        if self.base_lr == AUTO:
            changes["base_lr"] = max_lr / 4
        return dataclasses.replace(self, **changes)

    def momentum(self, base_momentum: float = 0.8, max_momentum: float = 0.9) -> CyclicMomentum:
        """The momentum cycled opposite to this LR (torch's ``cycle_momentum=True`` with its defaults)."""
        return CyclicMomentum(
            self.step_size_up,
            base_momentum=base_momentum,
            max_momentum=max_momentum,
            step_size_down=self.step_size_down,
            mode=self.mode,
            gamma=self.gamma,
            scale_fn=self.scale_fn,
            scale_mode=self.scale_mode,
        )


cyclic = Cyclic


@dataclass(frozen=True, repr=False)
class CyclicMomentum(_CyclicBase):
    """Momentum cycled opposite to :class:`Cyclic`'s LR: ``max_momentum - (max - base) · w(t) · scale``.

    Equal to the momentum (or ``beta1``) written by torch's ``CyclicLR(cycle_momentum=True)``; same wave and
    amplitude scaling as the LR, so ``cyclic(...).momentum()`` is the usual way to build it.
    """

    call_name = "cyclic_momentum"
    step_size_up: int = 2000
    base_momentum: float = 0.8
    max_momentum: float = 0.9
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    scale_fn: Callable[[float], float] | None = None
    scale_mode: str = "cycle"
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_number("base_momentum", self.base_momentum, low=0.0, high=1.0)
        check_number("max_momentum", self.max_momentum, low=0.0, high=1.0)
        _check_cyclic_shape(
            self.step_size_up, self.step_size_down, self.mode, self.gamma, self.scale_fn, self.scale_mode
        )

    def build(self) -> Schedule:
        return self._wave(self.max_momentum, self.base_momentum)


cyclic_momentum = CyclicMomentum
