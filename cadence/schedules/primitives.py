"""Primitive schedules: one shape each, from ``start`` to ``end`` over ``steps``, then held at ``end``.

Every recipe in :mod:`cadence.schedules.recipes` is a few primitives glued by the combinators of
:mod:`cadence.schedules.combinators`; the annealing formulas live here and nowhere else.

Example::

    >>> from cadence.schedules import cosine, linear
    >>> cosine(1.0, 0.0, steps=100)(50)
    0.5
    >>> linear(0.0, 1.0, steps=10)(25)   # past the end: clamped to the final value
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cadence.schedules.base import Schedule, check_number

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "Geometric",
    "Linear",
    "Polynomial",
    "constant",
    "cosine",
    "exponential",
    "geometric",
    "linear",
    "polynomial",
]


def _check_steps(steps: float) -> float:
    return check_number("steps", steps, low=0.0, low_open=True)


def _check_value(name: str, value: float) -> float:
    return check_number(name, value)


def _progress(t: float, steps: float) -> float:
    """Fraction of the way through ``steps``, clamped to [0, 1]."""
    return min(t, steps) / steps


@dataclass(frozen=True, repr=False)
class _Interpolation(Schedule):
    """A shape from ``start`` to ``end`` over ``steps``, then held at ``end``: the checks and the duration."""

    start: float
    end: float
    steps: float

    def __post_init__(self) -> None:
        _check_value("start", self.start)
        _check_value("end", self.end)
        _check_steps(self.steps)

    @property
    def duration(self) -> float:
        return self.steps


@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """``value`` at every step. ``steps`` only matters as the length of a phase inside ``sequence``."""

    call_name = "constant"
    value: float
    steps: float = math.inf

    def __post_init__(self) -> None:
        _check_value("value", self.value)
        check_number("steps", self.steps, low=0.0, low_open=True, allow_inf=True)

    def at(self, t: float) -> float:
        return self.value

    @property
    def duration(self) -> float:
        return self.steps


constant = Constant


@dataclass(frozen=True, repr=False)
class Linear(_Interpolation):
    """Linear interpolation: ``start + (end - start) · min(t, steps) / steps``."""

    call_name = "linear"

    def at(self, t: float) -> float:
        return (self.end - self.start) * _progress(t, self.steps) + self.start


linear = Linear


@dataclass(frozen=True, repr=False)
class Cosine(_Interpolation):
    """Half-cosine annealing: ``end + (start - end) / 2 · (1 + cos(π · min(t, steps) / steps))``.

    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """

    call_name = "cosine"

    def at(self, t: float) -> float:
        return self.end + (self.start - self.end) / 2.0 * (math.cos(math.pi * _progress(t, self.steps)) + 1)


cosine = Cosine


@dataclass(frozen=True, repr=False)
class Geometric(_Interpolation):
    """Log-linear interpolation: ``start · (end / start) ^ (min(t, steps) / steps)`` (both values > 0).

    The shape of the LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017).
    """

    call_name = "geometric"

    def __post_init__(self) -> None:
        check_number("start", self.start, low=0.0, low_open=True)
        check_number("end", self.end, low=0.0, low_open=True)
        _check_steps(self.steps)

    def at(self, t: float) -> float:
        return self.start * (self.end / self.start) ** _progress(t, self.steps)


geometric = Geometric


@dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """Exponential decay towards ``end``: ``end + (start - end) · rate ^ (t / rate_steps)``.

    With ``rate_steps=1`` the distance to ``end`` shrinks by ``rate`` every step; it never quite arrives, so
    the duration is infinite (``rate=1`` is a constant).
    """

    call_name = "exponential"
    start: float
    rate: float
    rate_steps: float = 1.0
    end: float = 0.0

    def __post_init__(self) -> None:
        _check_value("start", self.start)
        check_number("rate", self.rate, low=0.0, high=1.0, low_open=True)
        check_number("rate_steps", self.rate_steps, low=0.0, low_open=True)
        _check_value("end", self.end)

    def at(self, t: float) -> float:
        return self.end + (self.start - self.end) * self.rate ** (t / self.rate_steps)

    @property
    def duration(self) -> float:
        return 0.0 if self.rate == 1.0 or self.start == self.end else math.inf


exponential = Exponential


@dataclass(frozen=True, repr=False)
class Polynomial(_Interpolation):
    """Polynomial decay: ``end + (start - end) · (1 - min(t, steps) / steps) ^ power``.

    The shape of torch's ``PolynomialLR``; ``power=1`` is linear.
    """

    call_name = "polynomial"
    power: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("power", self.power, low=0.0, low_open=True)

    def at(self, t: float) -> float:
        return self.end + (self.start - self.end) * (1.0 - _progress(t, self.steps)) ** self.power


polynomial = Polynomial
