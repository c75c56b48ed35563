"""The Schedule base class and the argument checks every schedule shares.

A schedule is any callable ``step -> float``. The schedules in this package are frozen dataclasses built on
:class:`Schedule`:

* ``schedule(step)`` validates ``step`` (a negative step is a ``ValueError``) and evaluates
  :meth:`Schedule.at` at that step. Steps past the end clamp to the final value; nothing ever raises for a
  large step.
* :meth:`Schedule.at` takes a *local time* ``t >= 0`` (a float): combinators such as
  :func:`~cadence.schedules.combinators.join` evaluate their children on the children's own clock.
* :attr:`Schedule.duration` is the time at which the final value is reached (``math.inf`` for schedules that
  never settle, such as cyclic ones).
* ``repr(schedule)`` is the call that builds it, e.g. ``one_cycle(max_lr=0.1, total_steps=1000, ...)``, so run
  records can show it.

Arguments are checked at construction; errors are :class:`~cadence.errors.ConfigError` (a ``ValueError``)
whose message names the field and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from typing import Any, ClassVar

from cadence.errors import ConfigError

__all__ = [
    "AUTO",
    "REGISTRY",
    "Recipe",
    "Schedule",
    "check_choice",
    "check_integer",
    "check_lr",
    "check_number",
]

#: The placeholder accepted by recipes for an LR that the LR range test should choose.
AUTO = "auto"


def _format_value(value: Any) -> str:
    """Format one argument for a repr that reads as the constructing call (``inf`` -> ``math.inf``)."""
    if isinstance(value, float):
        if math.isinf(value):
            return "math.inf" if value > 0 else "-math.inf"
        if math.isnan(value):
            return "math.nan"
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(_format_value(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    if callable(value) and not isinstance(value, Schedule):
        return getattr(value, "__qualname__", None) or repr(value)
    return repr(value)


#: config name -> schedule class, for every class declared with ``config=True`` (see :class:`Schedule`).
REGISTRY: dict[str, type[Schedule]] = {}


class Schedule:
    """Base class of all schedules: a pure function of the optimizer step.

    Subclasses are ``@dataclass(frozen=True, repr=False)`` classes that set :attr:`call_name` (the public name
    used in the repr and in configs) and implement :meth:`at` and :attr:`duration`. A class declared as
    ``class MyRecipe(Recipe, config=True)`` is registered under its ``call_name``: configs
    (``[schedule.lr] name = "..."``), ``to_config``/``from_config`` and ``cadence schedule`` know it with no
    other edit.
    """

    #: public name of the constructor, used by ``repr`` and by ``to_config``/``from_config``
    call_name: ClassVar[str] = "schedule"

    def __init_subclass__(cls, *, config: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if config:
            if cls.call_name in REGISTRY:
                raise TypeError(f"a schedule named {cls.call_name!r} is already registered")
            REGISTRY[cls.call_name] = cls

    def __call__(self, step: int) -> float:
        """Return the value for the 0-based optimizer ``step`` (clamped to the final value past the end)."""
        if isinstance(step, bool) or not isinstance(step, numbers.Real):
            raise TypeError(f"step must be a non-negative integer, got {step!r}")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step=}")
        return float(self.at(float(step)))

    def at(self, t: float) -> float:
        """Value at local time ``t >= 0`` (steps since this schedule started)."""
        raise NotImplementedError

    @property
    def duration(self) -> float:
        """Local time at which the final value is reached; ``math.inf`` if the schedule never settles."""
        raise NotImplementedError

    def breakpoints(self, until: float) -> list[float]:
        """Local times up to ``until`` where a phase starts or ends, for previews and tables."""
        return [0.0] if self.duration > until else [0.0, self.duration]

    def phase_boundaries(self, total_steps: int) -> list[int]:
        """The integer steps in ``[0, total_steps)`` at which phases begin or end, plus the last step.

        Fractional boundaries (torch's one-cycle puts them at ``pct_start * total_steps - 1``) are listed at
        the nearest step on each side.
        """
        steps: set[int] = {0, total_steps - 1}
        for point in self.breakpoints(total_steps - 1):
            for step in {math.floor(point), math.ceil(point)}:
                if 0 <= step < total_steps:
                    steps.add(step)
        return sorted(steps)

    @property
    def needs_lr_finder(self) -> bool:
        """True while a learning rate is the placeholder ``"auto"`` (see :meth:`with_lr`)."""
        return False

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments, in order, as given (the fields shown by ``repr``)."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
            if field.init
        }

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={_format_value(value)}" for name, value in self.arguments().items())
        return f"{self.call_name}({inner})"


class Recipe(Schedule):
    """A schedule defined by building another one (:meth:`build`) from its arguments.

    Subclasses validate their arguments in :meth:`validate`, list the fields that accept ``"auto"`` in
    :attr:`lr_fields`, and return the composed schedule from :meth:`build`. While an LR is ``"auto"`` the
    schedule is built with 1.0 in its place so that its shape (phases, cycle ends) is known, but calling it
    raises until :meth:`with_lr` gives the real value.
    """

    lr_fields: ClassVar[tuple[str, ...]] = ()
    _built: Schedule

    def __post_init__(self) -> None:
        self.validate()
        object.__setattr__(self, "_built", self.build())

    def validate(self) -> None:
        """Check the arguments; raise :class:`~cadence.errors.ConfigError` naming the field and range."""

    def build(self) -> Schedule:
        """Return the schedule made of primitives and combinators that this recipe stands for."""
        raise NotImplementedError

    def lr(self, name: str) -> float:
        """The value of LR field ``name``, or 1.0 while it is ``"auto"`` (shape only)."""
        value = getattr(self, name)
        return 1.0 if value == AUTO else float(value)

    @property
    def needs_lr_finder(self) -> bool:
        return any(getattr(self, name) == AUTO for name in self.lr_fields)

    def with_lr(self, max_lr: float) -> Recipe:
        """This schedule with every ``"auto"`` learning rate replaced by ``max_lr`` (a number > 0)."""
        check_lr("max_lr", max_lr)
        changes = {name: max_lr for name in self.lr_fields if getattr(self, name) == AUTO}
        return dataclasses.replace(self, **changes)

    def at(self, t: float) -> float:
        if self.needs_lr_finder:
            auto = ", ".join(f"{name}='auto'" for name in self.lr_fields if getattr(self, name) == AUTO)
            raise ConfigError(
                f"{self.call_name}({auto}) has no learning rate yet: call .with_lr(max_lr) with a value, "
                "or let the Trainer choose it with the LR range test"
            )
        return self._built.at(t)

    @property
    def duration(self) -> float:
        return self._built.duration

    def breakpoints(self, until: float) -> list[float]:
        return self._built.breakpoints(until)


# ----------------------------------------------------------------------------------------------------------
# argument checks: one line each at the call site, one message style everywhere


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Check that ``value`` is a real number within the given bounds; return it as a float.

    The message names the field and the allowed range, e.g. ``pct_start must be in (0, 1), got
    pct_start=1.5``.
    """
    text = _range_text(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ConfigError(f"{name} must be a number {text}, got {name}={value!r}")
    if math.isinf(value) and not allow_inf:
        raise ConfigError(f"{name} must be a finite number {text}, got {name}={value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ConfigError(f"{name} must be {text}, got {name}={value!r}")
    return float(value)


def check_integer(name: str, value: Any, *, low: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) and ``>= low``; return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            bound = f" >= {low}" if low is not None else ""
            raise ConfigError(f"{name} must be an integer{bound}, got {name}={value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    return int(value)


def check_lr(name: str, value: Any, *, allow_auto: bool = False, allow_zero: bool = False) -> float | str:
    """Check a learning rate: a finite number > 0 (or >= 0), or ``"auto"`` where allowed."""
    if allow_auto and value == AUTO:
        return AUTO
    if isinstance(value, str):
        hint = ' or "auto" (chosen by the LR range test)' if allow_auto else ""
        raise ConfigError(f"{name} must be a number{hint}, got {name}={value!r}")
    return check_number(name, value, low=0.0, low_open=not allow_zero)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise ConfigError(f"{name} must be one of {listed}, got {name}={value!r}")
    return value


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    def show(bound: float) -> str:
        if math.isinf(bound):
            return "inf" if bound > 0 else "-inf"
        return f"{bound:g}"

    if low is not None and high is not None and not math.isinf(high):
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"in {left}{show(low)}, {show(high)}{right}"
    if low is not None:
        return f"> {show(low)}" if low_open else f">= {show(low)}"
    if high is not None:
        return f"< {show(high)}" if high_open else f"<= {show(high)}"
    return "(any finite value)"


def needs_lr_finder(schedule: Any) -> bool:
    """True for a schedule that was given ``"auto"`` and waits for the LR finder (the one way to ask)."""
    flag = getattr(schedule, "needs_lr_finder", False)
    return bool(flag() if callable(flag) else flag)
