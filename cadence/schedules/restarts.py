"""Cosine annealing with restarts: SGDR and the cyclic cosine of Snapshot Ensembles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cadence.errors import ConfigError
from cadence.schedules.base import AUTO, Recipe, Schedule, check_integer, check_lr, check_number
from cadence.schedules.combinators import Repeat, Truncate
from cadence.schedules.primitives import Cosine

__all__ = ["CosineRestarts", "SnapshotCosine", "cosine_restarts", "snapshot_cosine"]


@dataclass(frozen=True, repr=False)
class CosineRestarts(Recipe):
    """SGDR: cosine annealing from ``max_lr`` to ``min_lr``, restarted every cycle.

    Cycle ``i`` lasts ``cycle_steps · cycle_mult^i`` steps (rounded to the nearest step when ``cycle_mult`` is
    not an integer, at least 1) and its peak is ``min_lr + (max_lr - min_lr) · max_lr_decay^i``. With an
    integer ``cycle_mult`` and ``max_lr_decay=1`` this equals torch's ``CosineAnnealingWarmRestarts(T_0=
    cycle_steps, T_mult=cycle_mult, eta_min=min_lr)`` stepped once per step.

    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """

    call_name = "cosine_restarts"
    lr_fields = ("max_lr",)
    max_lr: float | str
    cycle_steps: int
    cycle_mult: float = 1.0
    min_lr: float = 0.0
    max_lr_decay: float = 1.0
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_lr("max_lr", self.max_lr, allow_auto=True)
        check_integer("cycle_steps", self.cycle_steps, low=1)
        check_number("cycle_mult", self.cycle_mult, low=1.0)
        check_lr("min_lr", self.min_lr, allow_zero=True)
        if self.max_lr != AUTO and self.min_lr > self.max_lr:  # type: ignore[operator]
            raise ConfigError(f"min_lr must be <= max_lr, got {self.min_lr=} and {self.max_lr=}")
        check_number("max_lr_decay", self.max_lr_decay, low=0.0, high=1.0, low_open=True)

    def build(self) -> Repeat:
        anneal = Cosine(self.lr("max_lr"), self.min_lr, self.cycle_steps)
        return Repeat(anneal, cycle_mult=self.cycle_mult, decay=self.max_lr_decay, decay_floor=self.min_lr)

    def cycle_ends(self, total_steps: int) -> list[int]:
        """Last step of every complete cycle before ``total_steps`` (the step just before each restart)."""
        return self.build().cycle_ends(total_steps)


cosine_restarts = CosineRestarts


@dataclass(frozen=True, repr=False)
class SnapshotCosine(Recipe):
    """Cyclic cosine annealing of Snapshot Ensembles: ``max_lr / 2 · (cos(π · (t mod c) / c) + 1)``.

    ``c = ceil(total_steps / num_snapshots)``; each cycle ends near 0, where a snapshot of the model is
    taken. Steps past ``total_steps - 1`` hold its value.

    Huang et al., "Snapshot Ensembles: Train 1, get M for free", ICLR 2017 (arXiv:1704.00109).
    """

    call_name = "snapshot_cosine"
    lr_fields = ("max_lr",)
    max_lr: float | str
    total_steps: int
    num_snapshots: int
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_lr("max_lr", self.max_lr, allow_auto=True)
        check_integer("total_steps", self.total_steps, low=1)
        check_integer("num_snapshots", self.num_snapshots, low=1)
        if self.num_snapshots > self.total_steps:
            raise ConfigError(
                f"num_snapshots must be <= total_steps, got num_snapshots={self.num_snapshots} "
                f"and total_steps={self.total_steps}"
            )

    @property
    def cycle_steps(self) -> int:
        """``c = ceil(total_steps / num_snapshots)``."""
        return math.ceil(self.total_steps / self.num_snapshots)

    def build(self) -> Schedule:
        return Truncate(Repeat(Cosine(self.lr("max_lr"), 0.0, self.cycle_steps)), self.total_steps - 1)

    def cycle_ends(self, total_steps: int) -> list[int]:
        """Last step of each cycle; the final cycle ends at this schedule's last step, ``total_steps - 1``.

        Only ends before the ``total_steps`` given here are listed.
        """
        length, last = self.cycle_steps, self.total_steps - 1
        own_ends = {min((index + 1) * length - 1, last) for index in range(self.num_snapshots)}
        return sorted(end for end in own_ends if end < total_steps)


snapshot_cosine = SnapshotCosine
