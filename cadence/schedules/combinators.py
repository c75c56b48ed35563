"""Combinators: build schedules out of schedules, each child running on its own local clock.

* :func:`join` — children one after another at explicit boundaries (local time restarts at each boundary).
* :func:`sequence` — the same with boundaries taken from the children's durations.
* :func:`warmup` — a linear ramp into any schedule.
* :func:`repeat` — a schedule over and over, each cycle optionally longer (``cycle_mult``) and with its
  distance to ``decay_floor`` shrunk by ``decay`` per cycle.
* :func:`truncate` — follow a schedule up to a local time, then hold its value there.
* :func:`compress` — a schedule played faster (or slower), keeping its shape.

Example (optax's ``warmup_cosine_decay_schedule`` in one line)::

    >>> from cadence.schedules import cosine, warmup
    >>> schedule = warmup(cosine(1.0, 0.0, steps=90), warmup_steps=10)
    >>> schedule(5), schedule(10), schedule(55)
    (0.5, 1.0, 0.5)
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from cadence.errors import ConfigError
from cadence.schedules.base import Schedule, check_integer, check_number
from cadence.schedules.primitives import linear

__all__ = [
    "Compress",
    "Join",
    "Repeat",
    "Sequence",
    "Truncate",
    "Warmup",
    "compress",
    "join",
    "repeat",
    "sequence",
    "truncate",
    "warmup",
]


def _check_schedule(name: str, value: object) -> Schedule:
    if not isinstance(value, Schedule):
        raise ConfigError(f"{name} must be a cadence schedule (e.g. linear(...)), got {name}={value!r}")
    return value


def _shifted(points: Iterable[float], offset: float, until: float) -> list[float]:
    return [point + offset for point in points if point + offset <= until]


@dataclass(frozen=True, repr=False)
class Join(Schedule):
    """``schedules[i]`` from ``boundaries[i - 1]`` (inclusive) to ``boundaries[i]``, each on local time.

    At a boundary the next schedule starts at its own time 0; if the values differ there, the step at the
    boundary already takes the next schedule's value (a restart).
    """

    call_name = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[float, ...]

    def __post_init__(self) -> None:
        schedules = tuple(self.schedules)
        boundaries = tuple(check_number("boundaries", at, low=0.0, low_open=True) for at in self.boundaries)
        if not schedules:
            raise ConfigError("schedules must hold at least one schedule, got schedules=()")
        for schedule in schedules:
            _check_schedule("schedules", schedule)
        if len(boundaries) != len(schedules) - 1:
            raise ConfigError(
                f"boundaries must hold one value fewer than schedules ({len(schedules) - 1}), "
                f"got {len(boundaries)}: boundaries={boundaries!r}"
            )
        if any(later <= earlier for earlier, later in itertools.pairwise(boundaries)):
            raise ConfigError(f"boundaries must be strictly increasing, got boundaries={boundaries!r}")
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "boundaries", boundaries)

    def at(self, t: float) -> float:
        index = bisect.bisect_right(self.boundaries, t)
        offset = self.boundaries[index - 1] if index else 0.0
        return self.schedules[index].at(t - offset)

    @property
    def duration(self) -> float:
        return (self.boundaries[-1] if self.boundaries else 0.0) + self.schedules[-1].duration

    def breakpoints(self, until: float) -> list[float]:
        points: set[float] = set()
        starts = (0.0, *self.boundaries)
        ends = (*self.boundaries, math.inf)
        for schedule, start, end in zip(self.schedules, starts, ends):
            points.update(_shifted(schedule.breakpoints(min(until, end) - start), start, min(until, end)))
            if start <= until:
                points.add(start)
        return sorted(points)


join = Join


class _Composed(Schedule):
    """A schedule defined as another one built in ``__post_init__`` (``_joined``), which it evaluates."""

    _joined: Schedule

    def at(self, t: float) -> float:
        return self._joined.at(t)

    @property
    def duration(self) -> float:
        return self._joined.duration

    def breakpoints(self, until: float) -> list[float]:
        return self._joined.breakpoints(until)


@dataclass(frozen=True, repr=False)
class Sequence(_Composed):
    """Schedules one after another, each lasting its ``duration`` (all but the last must be finite)."""

    call_name = "sequence"
    schedules: tuple[Schedule, ...]
    _joined: Join = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        schedules = tuple(_check_schedule("schedules", schedule) for schedule in self.schedules)
        if not schedules:
            raise ConfigError("schedules must hold at least one schedule, got schedules=()")
        boundaries: list[float] = []
        elapsed = 0.0
        for schedule in schedules[:-1]:
            if math.isinf(schedule.duration):
                raise ConfigError(
                    f"only the last of schedules may last forever; give {schedule!r} a finite length "
                    "(steps=...)"
                )
            elapsed += schedule.duration
            boundaries.append(elapsed)
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "_joined", Join(schedules, tuple(boundaries)))


sequence = Sequence


@dataclass(frozen=True, repr=False)
class Warmup(_Composed):
    """A linear ramp from ``start_value`` to ``schedule(0)`` over ``warmup_steps``, then ``schedule``.

    Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (gradual warmup).
    """

    call_name = "warmup"
    schedule: Schedule
    warmup_steps: int
    start_value: float = 0.0
    _joined: Sequence = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_schedule("schedule", self.schedule)
        check_integer("warmup_steps", self.warmup_steps, low=1)
        check_number("start_value", self.start_value)
        ramp = linear(self.start_value, self.schedule.at(0.0), self.warmup_steps)
        object.__setattr__(self, "_joined", Sequence((ramp, self.schedule)))


warmup = Warmup


@dataclass(frozen=True, repr=False)
class Repeat(Schedule):
    """``schedule`` repeated forever; cycle ``i`` (0-based) is ``schedule`` stretched to length ``L_i``.

    ``L_i = D · cycle_mult^i`` where ``D`` is the schedule's (finite) duration; when ``cycle_mult != 1`` the
    length is rounded to the nearest whole step (halves round up; at least 1), so every restart falls on a
    step: ``D=10, cycle_mult=1.5`` gives 10, 15, 23, 34, ... With an integer ``D`` and an integer
    ``cycle_mult`` nothing is rounded (torch's ``CosineAnnealingWarmRestarts`` with ``T_mult``).

    In cycle ``i`` the value is ``decay_floor + (v - decay_floor) · decay^i`` where ``v`` is the schedule's
    value, i.e. the distance to ``decay_floor`` shrinks by ``decay`` per cycle.
    """

    call_name = "repeat"
    schedule: Schedule
    cycle_mult: float = 1.0
    decay: float = 1.0
    decay_floor: float = 0.0

    def __post_init__(self) -> None:
        _check_schedule("schedule", self.schedule)
        duration = self.schedule.duration
        if math.isinf(duration) or duration <= 0:
            raise ConfigError(
                f"schedule must have a finite, positive duration to repeat, got {self.schedule!r}"
            )
        check_number("cycle_mult", self.cycle_mult, low=1.0)
        check_number("decay", self.decay, low=0.0, high=1.0, low_open=True)
        check_number("decay_floor", self.decay_floor)

    def cycle_length(self, index: int) -> float:
        """Length in steps of cycle ``index`` (0-based)."""
        if self.cycle_mult == 1.0:
            return self.schedule.duration
        return max(1.0, float(math.floor(self.schedule.duration * self.cycle_mult**index + 0.5)))

    def cycle_at(self, t: float) -> tuple[int, float, float]:
        """``(index, start, length)`` of the cycle that contains local time ``t``."""
        if self.cycle_mult == 1.0:
            length = self.schedule.duration
            index = math.floor(t / length)
            return index, index * length, length
        index, start = 0, 0.0
        length = self.cycle_length(0)
        while start + length <= t:
            start += length
            index += 1
            length = self.cycle_length(index)
        return index, start, length

    def at(self, t: float) -> float:
        index, start, length = self.cycle_at(t)
        duration = self.schedule.duration
        local = t - start if length == duration else (t - start) * (duration / length)
        value = self.schedule.at(local)
        if self.decay != 1.0:
            value = self.decay_floor + (value - self.decay_floor) * self.decay**index
        return value

    @property
    def duration(self) -> float:
        return math.inf

    def cycle_starts(self, until: float) -> list[float]:
        """Start times of the cycles that begin at or before ``until``."""
        starts, start, index = [], 0.0, 0
        while start <= until:
            starts.append(start)
            start += self.cycle_length(index)
            index += 1
        return starts

    def cycle_ends(self, total_steps: int) -> list[int]:
        """The last step of every cycle that is complete within ``total_steps`` steps."""
        starts = (math.ceil(start) for start in self.cycle_starts(total_steps)[1:])
        return [start - 1 for start in starts if start <= total_steps]

    def breakpoints(self, until: float) -> list[float]:
        points: set[float] = set()
        starts = self.cycle_starts(until)
        for index, start in enumerate(starts):
            stretch = self.cycle_length(index) / self.schedule.duration
            inner = self.schedule.breakpoints(self.schedule.duration)
            points.update(start + point * stretch for point in inner if start + point * stretch <= until)
        return sorted(points)


repeat = Repeat


@dataclass(frozen=True, repr=False)
class Truncate(Schedule):
    """``schedule`` up to local time ``steps``, then held at ``schedule(steps)``."""

    call_name = "truncate"
    schedule: Schedule
    steps: float

    def __post_init__(self) -> None:
        _check_schedule("schedule", self.schedule)
        check_number("steps", self.steps, low=0.0)

    def at(self, t: float) -> float:
        return self.schedule.at(min(t, self.steps))

    @property
    def duration(self) -> float:
        return min(self.steps, self.schedule.duration)

    def breakpoints(self, until: float) -> list[float]:
        limit = min(until, self.steps)
        return sorted({*self.schedule.breakpoints(limit), limit} if limit >= 0 else set())


truncate = Truncate


@dataclass(frozen=True, repr=False)
class Compress(Schedule):
    """``schedule`` played ``factor`` times faster: at local time ``t`` it is ``schedule.at(t · factor)``.

    A schedule for ``total_steps`` compressed by ``factor = total_steps / short_steps`` keeps its shape
    (warmup, peak, annealing, cycles) over ``short_steps``: this is how the LR race trains a candidate with
    "the real schedule" on a short budget. ``factor < 1`` stretches it.

    >>> from cadence.schedules import linear
    >>> schedule = compress(linear(1.0, 0.0, steps=100), factor=10.0)
    >>> schedule(0), schedule(5), schedule(10)
    (1.0, 0.5, 0.0)
    """

    call_name = "compress"
    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        _check_schedule("schedule", self.schedule)
        check_number("factor", self.factor, low=0.0, low_open=True)

    def at(self, t: float) -> float:
        return self.schedule.at(t * self.factor)

    @property
    def duration(self) -> float:
        return self.schedule.duration / self.factor

    def breakpoints(self, until: float) -> list[float]:
        return [point / self.factor for point in self.schedule.breakpoints(until * self.factor)]


compress = Compress
