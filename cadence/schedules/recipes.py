"""Recipes: the published LR and momentum policies, each a few primitives glued by combinators.

The cyclical ones live in :mod:`cadence.schedules.cyclical` and the cosine ones with restarts (SGDR, snapshot
cosine) in :mod:`cadence.schedules.restarts`; both are re-exported here. Parameter names and defaults follow
torch's ``OneCycleLR`` and ``CyclicLR`` wherever torch has them. Every recipe that takes a learning rate also
accepts ``"auto"`` for it (see :attr:`Recipe.needs_lr_finder` and :meth:`Recipe.with_lr`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cadence.errors import ConfigError
from cadence.schedules.base import Recipe, Schedule, check_choice, check_integer, check_lr, check_number
from cadence.schedules.combinators import Join, Sequence, Warmup
from cadence.schedules.cyclical import CYCLIC_MODES, Cyclic, CyclicMomentum, cyclic, cyclic_momentum
from cadence.schedules.primitives import Constant, Cosine, Exponential, Linear
from cadence.schedules.restarts import CosineRestarts, SnapshotCosine, cosine_restarts, snapshot_cosine

__all__ = [
    "ANNEAL_SHAPES",
    "CYCLIC_MODES",
    "CosineRestarts",
    "Cyclic",
    "CyclicMomentum",
    "OneCycle",
    "OneCycleMomentum",
    "RampSustainDecay",
    "Recipe",
    "SnapshotCosine",
    "WarmupCosine",
    "cosine_restarts",
    "cyclic",
    "cyclic_momentum",
    "one_cycle",
    "one_cycle_momentum",
    "ramp_sustain_decay",
    "scaled_lr",
    "snapshot_cosine",
    "warmup_cosine",
]

#: one-cycle annealing shapes (torch's ``anneal_strategy``)
ANNEAL_SHAPES: dict[str, type[Schedule]] = {"cos": Cosine, "linear": Linear}


# ----------------------------------------------------------------------------------------------------------
# one-cycle


def _one_cycle_shape(
    total_steps: int, pct_start: float, three_phase: bool, anneal: str, points: tuple[float, ...]
) -> Join:
    """The one-cycle phase layout of torch's ``OneCycleLR``, through the given values.

    Phase ends (in steps) are ``pct_start·T - 1``, then ``2·pct_start·T - 2`` (three phases only), then
    ``T - 1``; the phases anneal ``points[0] -> points[1] -> ...`` with the chosen shape.
    """
    first_end = float(pct_start * total_steps) - 1
    ends = [first_end, 2 * first_end, total_steps - 1.0] if three_phase else [first_end, total_steps - 1.0]
    shape = ANNEAL_SHAPES[anneal]
    starts = [0.0, *ends[:-1]]
    phases = tuple(
        shape(points[index], points[index + 1], end - start)
        for index, (start, end) in enumerate(zip(starts, ends))
    )
    return Join(phases, tuple(ends[:-1]))


def _check_one_cycle_layout(total_steps: int, pct_start: float, three_phase: bool, anneal: str) -> None:
    check_integer("total_steps", total_steps, low=2)
    check_number("pct_start", pct_start, low=0.0, high=1.0, low_open=True, high_open=True)
    check_choice("anneal", anneal, ANNEAL_SHAPES)
    if pct_start * total_steps <= 1:
        raise ConfigError(
            "pct_start * total_steps must be > 1 so that the warm-up phase spans at least one step, "
            f"got {pct_start=} and {total_steps=}"
        )
    if three_phase and 2 * pct_start * total_steps - 2 >= total_steps - 1:
        raise ConfigError(
            "with three_phase=True, pct_start must be < (total_steps + 1) / (2 * total_steps) so that the "
            f"third phase is not empty, got {pct_start=} and {total_steps=}"
        )


@dataclass(frozen=True, repr=False)
class OneCycle(Recipe):
    """The 1cycle learning-rate policy, equal to torch's ``OneCycleLR`` at every step.

    The LR rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of the steps, then
    anneals to ``max_lr / div_factor / final_div_factor`` at step ``total_steps - 1``. With
    ``three_phase=True`` it comes back down to the initial LR symmetrically, and a third phase anneals to the
    minimum (the paper's layout). ``anneal`` is torch's ``anneal_strategy``: ``"cos"`` or ``"linear"``.
    Unlike torch, steps past the end hold the final LR instead of raising.

    Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning Rates",
    2017 (arXiv:1708.07120); Smith, "A disciplined approach to neural network hyper-parameters", 2018.

    Example::

        >>> schedule = one_cycle(0.1, total_steps=1000)
        >>> [round(schedule(step), 9) for step in (0, 299, 999, 5000)]   # start, peak, end, held
        [0.004, 0.1, 4e-07, 4e-07]
    """

    call_name = "one_cycle"
    lr_fields = ("max_lr",)
    max_lr: float | str
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False
    anneal: str = "cos"
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_lr("max_lr", self.max_lr, allow_auto=True)
        _check_one_cycle_layout(self.total_steps, self.pct_start, self.three_phase, self.anneal)
        check_number("div_factor", self.div_factor, low=0.0, low_open=True)
        check_number("final_div_factor", self.final_div_factor, low=0.0, low_open=True)

    def build(self) -> Schedule:
        max_lr = self.lr("max_lr")
        initial = max_lr / self.div_factor
        final = initial / self.final_div_factor
        points = (initial, max_lr, initial, final) if self.three_phase else (initial, max_lr, final)
        return _one_cycle_shape(self.total_steps, self.pct_start, self.three_phase, self.anneal, points)

    def momentum(self, base_momentum: float = 0.85, max_momentum: float = 0.95) -> OneCycleMomentum:
        """The matching momentum schedule (torch's ``cycle_momentum=True``)."""
        return OneCycleMomentum(
            self.total_steps,
            base_momentum=base_momentum,
            max_momentum=max_momentum,
            pct_start=self.pct_start,
            three_phase=self.three_phase,
            anneal=self.anneal,
        )


one_cycle = OneCycle


@dataclass(frozen=True, repr=False)
class OneCycleMomentum(Recipe):
    """Momentum of the 1cycle policy, cycled opposite to the LR (torch's ``cycle_momentum=True``).

    From ``max_momentum`` down to ``base_momentum`` while the LR rises, back up to ``max_momentum`` while it
    falls (three phases: up again in phase two, constant ``max_momentum`` in phase three). Equal to the
    momentum (or Adam's ``beta1``) that torch's ``OneCycleLR`` writes at every step.
    """

    call_name = "one_cycle_momentum"
    total_steps: int
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    pct_start: float = 0.3
    three_phase: bool = False
    anneal: str = "cos"
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        _check_one_cycle_layout(self.total_steps, self.pct_start, self.three_phase, self.anneal)
        check_number("base_momentum", self.base_momentum, low=0.0, high=1.0)
        check_number("max_momentum", self.max_momentum, low=0.0, high=1.0)

    def build(self) -> Schedule:
        high, low = self.max_momentum, self.base_momentum
        points = (high, low, high, high) if self.three_phase else (high, low, high)
        return _one_cycle_shape(self.total_steps, self.pct_start, self.three_phase, self.anneal, points)


one_cycle_momentum = OneCycleMomentum

# ----------------------------------------------------------------------------------------------------------
# warmup and decay


@dataclass(frozen=True, repr=False)
class WarmupCosine(Recipe):
    """Linear warmup from ``start_lr`` to ``max_lr`` over ``warmup_steps``, then cosine to ``min_lr``.

    ``min_lr`` is reached at step ``total_steps`` (as in optax's ``warmup_cosine_decay_schedule`` and Hugging
    Face's ``get_cosine_schedule_with_warmup``), so the last update ``total_steps - 1`` is just above it;
    later steps hold ``min_lr``. ``warmup_steps=0`` is a plain cosine.

    Goyal et al., "Accurate, Large Minibatch SGD", 2017 (warmup); Loshchilov & Hutter, ICLR 2017 (cosine).
    """

    call_name = "warmup_cosine"
    lr_fields = ("max_lr",)
    max_lr: float | str
    total_steps: int
    warmup_steps: int
    start_lr: float = 0.0
    min_lr: float = 0.0
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_lr("max_lr", self.max_lr, allow_auto=True)
        check_integer("total_steps", self.total_steps, low=1)
        check_integer("warmup_steps", self.warmup_steps, low=0)
        if self.warmup_steps >= self.total_steps:
            raise ConfigError(
                f"warmup_steps must be < total_steps, got warmup_steps={self.warmup_steps} "
                f"and total_steps={self.total_steps}"
            )
        check_lr("start_lr", self.start_lr, allow_zero=True)
        check_lr("min_lr", self.min_lr, allow_zero=True)

    def build(self) -> Schedule:
        anneal = Cosine(self.lr("max_lr"), self.min_lr, self.total_steps - self.warmup_steps)
        if self.warmup_steps == 0:
            return anneal
        return Warmup(anneal, self.warmup_steps, start_value=self.start_lr)


warmup_cosine = WarmupCosine


@dataclass(frozen=True, repr=False)
class RampSustainDecay(Recipe):
    """Linear ramp, plateau, then exponential decay to ``min_lr``.

    ``lr(t) = start_lr + (max_lr - start_lr) · t / ramp_steps`` for ``t < ramp_steps``, ``max_lr`` for the
    next ``sustain_steps``, then ``(max_lr - min_lr) · decay^((t - ramp_steps - sustain_steps) /
    decay_steps) + min_lr``. With ``start_lr = min_lr = 1e-3``, ``max_lr = 2e-3``, ``ramp_steps=6``,
    ``sustain_steps=0``, ``decay=0.5`` and one step per epoch this is the well-known 24-epoch curve of Martin
    Görner's TensorFlow/Keras talks and TPU codelabs (2019).
    """

    call_name = "ramp_sustain_decay"
    start_lr: float
    max_lr: float
    min_lr: float
    ramp_steps: int
    sustain_steps: int
    decay: float
    decay_steps: float = 1
    _built: Schedule = field(init=False, repr=False, compare=False)

    def validate(self) -> None:
        check_lr("start_lr", self.start_lr, allow_zero=True)
        check_lr("max_lr", self.max_lr)
        check_lr("min_lr", self.min_lr, allow_zero=True)
        if self.min_lr > self.max_lr:
            raise ConfigError(f"min_lr must be <= max_lr, got {self.min_lr=} and {self.max_lr=}")
        check_integer("ramp_steps", self.ramp_steps, low=0)
        check_integer("sustain_steps", self.sustain_steps, low=0)
        check_number("decay", self.decay, low=0.0, high=1.0, low_open=True)
        check_number("decay_steps", self.decay_steps, low=0.0, low_open=True)

    def build(self) -> Schedule:
        phases: list[Schedule] = []
        if self.ramp_steps:
            phases.append(Linear(self.start_lr, self.max_lr, self.ramp_steps))
        if self.sustain_steps:
            phases.append(Constant(self.max_lr, self.sustain_steps))
        phases.append(Exponential(self.max_lr, self.decay, rate_steps=self.decay_steps, end=self.min_lr))
        return Sequence(tuple(phases))


ramp_sustain_decay = RampSustainDecay


# ----------------------------------------------------------------------------------------------------------
# batch-size scaling


def scaled_lr(base_lr: float, batch_size: int, *, base_batch_size: int = 256, rule: str = "linear") -> float:
    """The LR for ``batch_size`` given one tuned for ``base_batch_size``.

    ``"linear"``: ``base_lr · batch_size / base_batch_size`` (Goyal et al., "Accurate, Large Minibatch SGD:
    Training ImageNet in 1 Hour", 2017). ``"sqrt"``: ``base_lr · sqrt(batch_size / base_batch_size)``
    (Krizhevsky, "One weird trick for parallelizing convolutional neural networks", 2014; often preferred for
    Adam). Example: ``scaled_lr(0.1, 1024) == 0.4``.
    """
    check_lr("base_lr", base_lr)
    check_integer("batch_size", batch_size, low=1)
    check_integer("base_batch_size", base_batch_size, low=1)
    check_choice("rule", rule, ("linear", "sqrt"))
    ratio = batch_size / base_batch_size
    return float(base_lr) * (ratio if rule == "linear" else math.sqrt(ratio))
