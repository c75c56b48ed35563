"""Combinators: build schedules out of schedules, each child running on its own local clock.

* :func:`join` — children one after another at explicit boundaries (local time restarts at each boundary).
* :func:`sequence` — the same with boundaries taken from the children's durations.
* :func:`warmup` — a linear ramp into any schedule.
* :func:`repeat` — a schedule over and over, each cycle optionally longer (``cycle_mult``) and with its
  distance to ``decay_floor`` shrunk by ``decay`` per cycle.
* :func:`truncate` — follow a schedule up to a local time, then hold its value there.
* :func:`compress` — a schedule played faster (or slower), keeping its shape.
* :func:`product` — the pointwise product of schedules (a base LR times per-group modifiers).
* :func:`shift` — a schedule started ``offset`` steps into its own clock.
* :func:`scaled` — ``factor`` times a schedule, the factor warmed up linearly (batch-size LR scaling).

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
from cadence.schedules.primitives import Constant, constant, linear

__all__ = [
    "Compress",
    "Join",
    "Product",
    "Repeat",
    "Scaled",
    "Sequence",
    "Shift",
    "Truncate",
    "Warmup",
    "compress",
    "join",
    "product",
    "repeat",
    "scaled",
    "sequence",
    "shift",
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


@dataclass(frozen=True, repr=False)
class Product(Schedule):
    """The pointwise product ``schedules[0](t) · schedules[1](t) · ...`` (every child on the same clock).

    This is how a per-group learning rate is put together: the run's schedule times the group's scale
    times the modifiers techniques register (see :class:`cadence.hyperparams.HyperparamPipeline`).

    >>> from cadence.schedules import constant, linear
    >>> product((linear(0.0, 1.0, steps=10), constant(0.5)))(4)
    0.2
    """

    call_name = "product"
    schedules: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        schedules = tuple(self.schedules)
        if not schedules:
            raise ConfigError("schedules must hold at least one schedule, got schedules=()")
        for schedule in schedules:
            _check_schedule("schedules", schedule)
        object.__setattr__(self, "schedules", schedules)

    def at(self, t: float) -> float:
        value = 1.0
        for schedule in self.schedules:
            value *= schedule.at(t)
        return value

    @property
    def duration(self) -> float:
        # A constant factor never changes the time at which the product settles.
        changing = [schedule.duration for schedule in self.schedules if not isinstance(schedule, Constant)]
        return max(changing, default=0.0)

    def breakpoints(self, until: float) -> list[float]:
        points: set[float] = set()
        for schedule in self.schedules:
            if not isinstance(schedule, Constant):
                points.update(schedule.breakpoints(until))
        return sorted(points or {0.0})


product = Product


@dataclass(frozen=True, repr=False)
class Shift(Schedule):
    """``schedule`` started ``offset`` steps into its own clock: at local time ``t`` it is
    ``schedule.at(t + offset)``. Inside :func:`join` it keeps a child on the run's global clock.

    >>> from cadence.schedules import linear
    >>> shift(linear(0.0, 1.0, steps=10), offset=5)(0)
    0.5
    """

    call_name = "shift"
    schedule: Schedule
    offset: float

    def __post_init__(self) -> None:
        _check_schedule("schedule", self.schedule)
        check_number("offset", self.offset, low=0.0)

    def at(self, t: float) -> float:
        return self.schedule.at(t + self.offset)

    @property
    def duration(self) -> float:
        return max(0.0, self.schedule.duration - self.offset)

    def breakpoints(self, until: float) -> list[float]:
        points = [point - self.offset for point in self.schedule.breakpoints(until + self.offset)]
        return sorted({0.0, *(point for point in points if point >= 0.0)})


shift = Shift


@dataclass(frozen=True, repr=False)
class Scaled(_Composed):
    """``factor · schedule(t)``, with a linear warmup of the multiplier over the first ``warmup_steps``.

    During warmup the value is ``schedule(t) · (warmup_start + (factor - warmup_start) · t / warmup_steps)``:
    the product of ``schedule`` and ``linear(warmup_start, factor, steps=warmup_steps)``. With
    ``warmup_start = 1`` (the default) the run starts at the unscaled LR and reaches the scaled one at
    ``warmup_steps`` (Goyal et al.'s "gradual warmup", 2017); ``warmup_start = 0`` is a warmup from zero.
    The warmup overlays the first steps of ``schedule`` instead of being prepended, so the schedule keeps
    its own clock: phase boundaries, ``total_steps`` and cycle ends are where the user configured them.

    >>> from cadence.schedules import constant
    >>> schedule = scaled(constant(0.1), factor=4.0, warmup_steps=10)
    >>> round(schedule(0), 6), round(schedule(5), 6), round(schedule(10), 6)
    (0.1, 0.25, 0.4)
    """

    call_name = "scaled"
    schedule: Schedule
    factor: float
    warmup_steps: int = 0
    warmup_start: float = 1.0

    def __post_init__(self) -> None:
        _check_schedule("schedule", self.schedule)
        check_number("factor", self.factor, low=0.0, low_open=True)
        check_integer("warmup_steps", self.warmup_steps, low=0)
        check_number("warmup_start", self.warmup_start, low=0.0)
        object.__setattr__(self, "_joined", product((self.schedule, self.multiplier_schedule)))

    @property
    def multiplier_schedule(self) -> Schedule:
        """The multiplier as a schedule: linear from ``warmup_start`` to ``factor``, then ``factor``."""
        if self.warmup_steps == 0:
            return constant(float(self.factor))
        return linear(float(self.warmup_start), float(self.factor), steps=self.warmup_steps)

    def multiplier(self, t: float) -> float:
        """The multiplier at local time ``t``."""
        return self.multiplier_schedule.at(t)

    @property
    def duration(self) -> float:
        return max(float(self.warmup_steps), self.schedule.duration)

    def cycle_ends(self, total_steps: int) -> list[int]:
        """The wrapped cyclic schedule's cycle ends (scaling does not move them), for snapshot ensembles."""
        cycle_ends = getattr(self.schedule, "cycle_ends", None)
        if not callable(cycle_ends):
            raise ConfigError(
                f"{self.schedule!r} has no cycle ends; snapshot ensembles need a cyclic LR schedule "
                "(snapshot_cosine, cosine_restarts, cyclic) or explicit snapshot steps"
            )
        return cycle_ends(total_steps)

    def breakpoints(self, until: float) -> list[float]:
        points = set(self.schedule.breakpoints(until))
        if 0 < self.warmup_steps <= until:
            points.add(float(self.warmup_steps))
        return sorted(points)


scaled = Scaled
