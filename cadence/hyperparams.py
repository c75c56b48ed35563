"""The hyperparameter pipeline: the one place where schedules meet the optimizer.

For every step and every param group ``g``, the value written is::

    value_g(step) = schedule(step) · g["lr_scale"] · modifier_1[g](step) · modifier_2[g](step) · ...

``schedule`` is the run's schedule for the hyperparameter (``"lr"``, ``"momentum"``, ``"weight_decay"``),
possibly replaced by a technique that owns a phase of it (SWA's LR phase, a gradual-unfreezing stage's LR);
the scale is ``lr_scale`` for the LR (discriminative LRs), ``weight_decay_scale`` for weight decay and 1 for
momentum; the modifiers are per-group schedules techniques register (FreezeOut's per-group anneal, 0 for a
group that gradual unfreezing keeps frozen). Every piece is a :class:`~cadence.schedules.Schedule` of the
step, so each group's value is one too (:meth:`HyperparamPipeline.group_schedule`), nothing here keeps state
and there is nothing to checkpoint. No other code writes ``param_group["lr"]``.

In a plain loop::

    pipeline = HyperparamPipeline({"lr": one_cycle(0.1, total_steps=n)})
    for step, (x, y) in enumerate(batches):
        pipeline.apply(optimizer, step)          # or set_hyperparams(optimizer, step, lr=schedule)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import torch

from cadence.errors import ConfigError
from cadence.schedules.base import Schedule
from cadence.schedules.combinators import Product, join, product, shift
from cadence.schedules.primitives import constant

__all__ = [
    "HYPERPARAMS",
    "FunctionSchedule",
    "HyperparamPipeline",
    "Modifier",
    "ScheduleOrValue",
    "as_schedule",
    "hyperparams_at",
    "resolve",
    "set_hyperparams",
    "stage_schedule",
]

#: The hyperparameters the pipeline writes, and the param-group key that scales each (None: not scaled).
HYPERPARAMS: dict[str, str | None] = {
    "lr": "lr_scale",
    "momentum": None,
    "weight_decay": "weight_decay_scale",
}

ScheduleOrValue: TypeAlias = Callable[[int], float] | float | int


def resolve(value: ScheduleOrValue, step: int) -> float:
    """Return ``value(step)`` for a schedule, or the value itself for a constant."""
    if callable(value):
        return float(value(step))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a schedule (a callable step -> float) or a number, got {value!r}")


def _momentum_key(group: dict) -> str:
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    raise ValueError(
        "this optimizer has no momentum to schedule: its param groups have neither 'momentum' "
        "(SGD, RMSprop) nor 'betas' (Adam family); pass momentum=None"
    )


@dataclass(frozen=True, repr=False)
class FunctionSchedule(Schedule):
    """A plain callable ``step -> float`` as a :class:`~cadence.schedules.Schedule` (so it composes).

    It prints as the function's name; it cannot be stored in a config.
    """

    call_name = "function"
    function: Callable[[int], float]

    def at(self, t: float) -> float:
        return float(self.function(round(t)))

    @property
    def duration(self) -> float:
        return math.inf

    def __repr__(self) -> str:
        return getattr(self.function, "__qualname__", None) or repr(self.function)


def as_schedule(value: ScheduleOrValue) -> Schedule:
    """``value`` as a :class:`~cadence.schedules.Schedule`: itself, ``constant(value)`` for a number, or a
    :class:`FunctionSchedule` for any other callable ``step -> float``."""
    if isinstance(value, Schedule):
        return value
    if callable(value):
        return FunctionSchedule(value)
    return constant(resolve(value, 0))


@dataclass(frozen=True)
class Modifier:
    """Per-group factors one technique applies to one hyperparameter: ``factors[i]`` for param group ``i``."""

    owner: str
    key: str
    factors: tuple[Schedule, ...]


class HyperparamPipeline:
    """The run's schedules, the techniques' replacements of them and the per-group modifiers.

    ``schedules`` maps hyperparameter names (see :data:`HYPERPARAMS`) to schedules or numbers. Techniques
    call :meth:`replace` (they own the value of a hyperparameter from some step on: build the replacement
    from :meth:`schedule`, the one in force) and :meth:`multiply` (per-group factors). Both are recorded
    with the technique's name, so :meth:`describe` says who shaped which value. A hyperparameter with no
    schedule is not written (the optimizer's own values stand) and cannot be multiplied.
    """

    def __init__(self, schedules: Mapping[str, ScheduleOrValue] | None = None) -> None:
        schedules = dict(schedules or {})
        unknown = sorted(set(schedules) - set(HYPERPARAMS))
        if unknown:
            raise ConfigError(
                f"schedules: unknown hyperparameter(s) {unknown}; allowed: {', '.join(HYPERPARAMS)}"
            )
        self._schedules: dict[str, ScheduleOrValue] = {
            key: value for key, value in schedules.items() if value is not None
        }
        self._replaced_by: dict[str, list[str]] = {}
        self.modifiers: list[Modifier] = []

    # -- building ---------------------------------------------------------------------------------------

    @property
    def schedules(self) -> dict[str, ScheduleOrValue]:
        """The schedule in force for each hyperparameter (after replacements)."""
        return dict(self._schedules)

    def schedule(self, key: str) -> ScheduleOrValue | None:
        """The schedule in force for ``key`` (``None`` when it is not scheduled)."""
        return self._schedules.get(key)

    def replace(self, key: str, schedule: ScheduleOrValue, *, owner: str) -> None:
        """Make ``schedule`` the one in force for ``key`` (a technique owning a phase builds it from
        :meth:`schedule`, e.g. ``join((old, swa_phase), boundaries=(start,))``)."""
        self._check_key(key)
        self._schedules[key] = schedule
        self._replaced_by.setdefault(key, []).append(owner)

    def multiply(self, key: str, factors: Sequence[ScheduleOrValue], *, owner: str) -> None:
        """Multiply param group ``i``'s ``key`` by ``factors[i]`` (one schedule or number per param group)."""
        self._check_key(key)
        if key not in self._schedules:
            raise ConfigError(
                f"{owner} modifies {key!r} per param group, but the run has no {key!r} schedule: give the "
                f"Trainer schedules={{{key!r}: ...}} (a constant is fine)"
            )
        self.modifiers.append(Modifier(owner, key, tuple(as_schedule(factor) for factor in factors)))

    def _check_key(self, key: str) -> None:
        if key not in HYPERPARAMS:
            raise ConfigError(f"unknown hyperparameter {key!r}; allowed: {', '.join(HYPERPARAMS)}")

    # -- reading ----------------------------------------------------------------------------------------

    def values(self, step: int) -> dict[str, float]:
        """The unscaled value of every scheduled hyperparameter at ``step``, e.g. ``{"lr": 0.1}``."""
        return {key: resolve(schedule, step) for key, schedule in self._schedules.items()}

    def group_schedule(self, key: str, group: Mapping, index: int) -> Product:
        """Param group ``index``'s value of ``key`` as one schedule: the product of the pieces."""
        scale_key = HYPERPARAMS[key]
        pieces = [as_schedule(self._schedules[key])]
        if scale_key is not None:
            pieces.append(constant(float(group.get(scale_key, 1.0))))
        pieces += [modifier.factors[index] for modifier in self.modifiers if modifier.key == key]
        return product(tuple(pieces))

    def group_values(self, optimizer: torch.optim.Optimizer, step: int) -> list[dict[str, float]]:
        """The values written into each param group at ``step``: ``[{"lr": ..., "momentum": ...}, ...]``."""
        return self._evaluate(optimizer, step)[1]

    def _evaluate(
        self, optimizer: torch.optim.Optimizer, step: int
    ) -> tuple[dict[str, float], list[dict[str, float]]]:
        """The unscaled values and, per param group, the values to write (each schedule evaluated once)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step=}")
        base = self.values(step)
        factors = self._factors(step, len(optimizer.param_groups)) if self.modifiers else None
        rows = []
        for index, group in enumerate(optimizer.param_groups):
            row = {}
            for key, value in base.items():
                scale_key = HYPERPARAMS[key]
                scale = float(group.get(scale_key, 1.0)) if scale_key is not None else 1.0
                row[key] = value * scale * (factors[key][index] if factors is not None else 1.0)
            rows.append(row)
        return base, rows

    def _factors(self, step: int, groups: int) -> dict[str, list[float]]:
        factors = {key: [1.0] * groups for key in self._schedules}
        for modifier in self.modifiers:
            if len(modifier.factors) != groups:
                raise ConfigError(
                    f"{modifier.owner} gives {len(modifier.factors)} {modifier.key!r} factors for an "
                    f"optimizer with {groups} param groups"
                )
            column = factors[modifier.key]
            for index, factor in enumerate(modifier.factors):
                column[index] *= factor(step)
        return factors

    def describe(self) -> dict[str, dict[str, object]]:
        """Who shaped each hyperparameter: the schedule in force, its replacers and its modifiers."""
        return {
            key: {
                "schedule": repr(schedule),
                "replaced_by": list(self._replaced_by.get(key, [])),
                "modified_by": [modifier.owner for modifier in self.modifiers if modifier.key == key],
            }
            for key, schedule in self._schedules.items()
        }

    # -- writing ----------------------------------------------------------------------------------------

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> dict[str, float]:
        """Write the values for ``step`` into every param group; return the unscaled values."""
        base, rows = self._evaluate(optimizer, step)
        for group, row in zip(optimizer.param_groups, rows):
            for key, value in row.items():
                _write(group, key, value)
        return base


def _write(group: dict, key: str, value: float) -> None:
    if key == "lr":
        group["lr"] = value
    elif key == "momentum":
        if _momentum_key(group) == "momentum":
            group["momentum"] = value
        else:
            group["betas"] = (value, *tuple(group["betas"])[1:])
    else:
        if "weight_decay" not in group:
            raise ValueError("this optimizer has no 'weight_decay' to schedule; pass weight_decay=None")
        group["weight_decay"] = value


def hyperparams_at(
    optimizer: torch.optim.Optimizer, step: int, pipeline: HyperparamPipeline
) -> list[dict[str, float]]:
    """The values ``pipeline`` writes into each param group of ``optimizer`` at ``step`` (nothing is
    written): ``[{"lr": ..., "momentum": ...}, ...]``, one dict per param group."""
    return pipeline.group_values(optimizer, step)


def stage_schedule(
    base: ScheduleOrValue | None, stages: Sequence[tuple[int, ScheduleOrValue | None]], *, owner: str
) -> Schedule:
    """``base`` with phases replaced: from each ``start`` on, the stage's schedule on its local clock
    (``step - start``), or ``base`` on the global clock when the stage gives none. Built with ``join`` and
    ``shift``; a later stage starting at the same step wins."""
    children: list[Schedule] = []
    boundaries: list[float] = []
    last_start: int | None = None
    for start, schedule in stages:
        if schedule is None:
            if base is None:
                raise ConfigError(
                    f"{owner}: a stage without its own value needs the Trainer's schedule for it; give every "
                    "stage a value or the Trainer a schedule"
                )
            child = shift(as_schedule(base), offset=float(start)) if start else as_schedule(base)
        else:
            child = as_schedule(schedule)
        if start == last_start:
            children[-1] = child  # two stages from the same step: the later one is in force
            continue
        if children:
            boundaries.append(float(start))
        children.append(child)
        last_start = start
    return children[0] if len(children) == 1 else join(tuple(children), tuple(boundaries))


def set_hyperparams(
    optimizer: torch.optim.Optimizer,
    step: int,
    *,
    lr: ScheduleOrValue | None = None,
    momentum: ScheduleOrValue | None = None,
    weight_decay: ScheduleOrValue | None = None,
) -> dict[str, float]:
    """Write the values of the given schedules at ``step`` into every param group of ``optimizer``.

    ``lr`` is multiplied by each group's ``lr_scale`` (1.0 when absent), which is how discriminative
    per-layer-group learning rates are expressed. ``momentum`` goes to ``momentum`` (SGD, RMSprop) or to
    ``betas[0]`` (Adam, AdamW, ...). ``weight_decay`` is multiplied by the group's ``weight_decay_scale``
    (1.0 when absent; 0.0 exempts norms and biases). Arguments left as ``None`` are not touched.

    Returns the unscaled values written, e.g. ``{"lr": 0.1, "momentum": 0.9}``.

    Example::

        for step, (x, y) in enumerate(batches):
            set_hyperparams(optimizer, step, lr=schedule)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    """
    schedules = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
    return HyperparamPipeline(schedules).apply(optimizer, step)
