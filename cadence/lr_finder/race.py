"""Choosing ``max_lr`` by training: the LR range test brackets the usable range, a short race decides.

A sweep alone reads one point off a loss curve, and no fixed point of that curve is the best peak LR of a
schedule on every task (``docs/lr_finder.md``). The race asks the question that matters instead: which of a
few learning rates trains best *with the run's own schedule*?

1. **Sweep** (:func:`cadence.lr_finder.find_lr`) on the training part of the data. The LR at the lowest
   smoothed loss, ``lr_min``, is where the loss stops falling: the top of the usable range.
2. **Candidates**: ``lr_min · 2^-k`` for ``k = 0 .. candidates - 1``, a ladder one octave apart below it.
3. **Successive halving**: each round trains every remaining candidate from the same initial weights with
   the run's schedules *compressed* to the round's step budget (:func:`cadence.schedules.compress`), using the
   run's training step (the Trainer: precision, clipping, accumulation, label smoothing, mixup), and scores it
   by the loss on a validation split carved from the training data (never the test set); the better half goes
   on to a round with twice the steps. Each round costs the same, so the whole race costs ``budget`` times one
   training run.
4. When every first-round candidate stalled after a flat sweep (the minimum was noise), the race runs once
   more with the ladder an octave below the sweep's divergence edge (:func:`_edge_of_bracket`).
5. The last round has three finalists; when the best lies between the other two, ``max_lr`` is the vertex
   of the parabola through their validation losses (in ``log2 lr``, at most half an octave from the best),
   else the best itself. Every candidate's result is recorded (``lr_selection.json``).

``method="sweep"`` skips the race and returns the sweep's suggestion (cheapest, least reliable).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError
from cadence.lr_finder.holdout import holdout_split
from cadence.lr_finder.result import LRFinderResult
from cadence.lr_finder.selection import LRSelection, RaceEntry, load_selection, plot_selection
from cadence.lr_finder.state import TrainingSnapshot
from cadence.lr_finder.sweep import find_lr
from cadence.schedules.base import needs_lr_finder
from cadence.train.checkpoint import capture_rng_state, restore_rng_state

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_CANDIDATES",
    "SELECTION_METHODS",
    "SELECTION_OPTIONS",
    "LRSelection",
    "RaceEntry",
    "candidate_ladder",
    "check_selection_options",
    "load_selection",
    "plot_selection",
    "race_plan",
    "select_lr",
]

SELECTION_METHODS = ("race", "sweep")
#: The keyword arguments of :func:`select_lr` a run may set (``Trainer(lr_selection=...)``).
SELECTION_OPTIONS = (
    "method",
    "budget",
    "candidates",
    "val_data",
    "val_fraction",
    "refine_vertex",
    "rule",
    "sweep_options",
)
#: Total cost of the race as a multiple of one training run's optimizer steps (see docs/lr_finder.md).
DEFAULT_BUDGET = 1.0
DEFAULT_CANDIDATES = 5
DEFAULT_VAL_FRACTION = 0.1
#: The sweep used to bracket the range: wide enough for SGD and Adam alike.
SWEEP_DEFAULTS: dict[str, Any] = {"start_lr": 1e-6, "end_lr": 10.0, "num_steps": 100}
#: No race round trains a candidate for fewer steps than this.
MIN_ROUND_STEPS = 10


def candidate_ladder(lr_top: float, count: int) -> list[float]:
    """``count`` learning rates one octave apart, from ``lr_top`` down: ``lr_top · 2^-k``.

    >>> candidate_ladder(0.8, 4)
    [0.1, 0.2, 0.4, 0.8]
    """
    if not (math.isfinite(lr_top) and lr_top > 0):
        raise ConfigError(f"the top of the LR bracket must be a number > 0, got {lr_top=}")
    return sorted(lr_top * 2.0**-k for k in range(count))


def race_plan(candidates: int, budget_steps: int, finalists: int = 3) -> list[tuple[int, int]]:
    """Successive halving: ``[(candidates in round, steps per candidate), ...]`` within ``budget_steps``.

    Each round keeps the better half (rounded up, at least ``finalists``) until ``finalists`` are left; every
    round gets the same share of the budget, so the steps per candidate grow as the field shrinks.

    >>> race_plan(5, 1500)
    [(5, 150), (3, 250)]
    >>> race_plan(8, 1200)
    [(8, 50), (4, 100), (3, 133)]
    """
    sizes = [candidates]
    while sizes[-1] > finalists:
        sizes.append(max(finalists, math.ceil(sizes[-1] / 2)))
    share = budget_steps / len(sizes)
    return [(size, max(MIN_ROUND_STEPS, int(share // size))) for size in sizes]


def refine(entries: list[RaceEntry]) -> tuple[float, str]:
    """The LR of the final round: the best entry, moved to the vertex of the parabola (in ``log2 lr``)
    through it and its two neighbours when it lies between them, at most half an octave each way.

    >>> scores = ((0.1, 1.0), (0.2, 0.5), (0.4, 0.6))
    >>> points = [RaceEntry(lr, 1, 100, score, {}, "completed") for lr, score in scores]
    >>> round(refine(points)[0], 4)
    0.252
    """
    ranked = sorted(entries, key=lambda entry: entry.lr)
    best = min(range(len(ranked)), key=lambda index: (ranked[index].score, ranked[index].lr))
    chosen = ranked[best]
    if not 0 < best < len(ranked) - 1 or not all(math.isfinite(e.score) for e in ranked[best - 1 : best + 2]):
        return chosen.lr, f"lowest validation loss ({chosen.score:.4f}) after {chosen.steps} steps"
    x = [math.log2(entry.lr) for entry in ranked[best - 1 : best + 2]]
    y = [entry.score for entry in ranked[best - 1 : best + 2]]
    curvature, slope, _ = np.polyfit(x, y, 2)
    vertex = x[1] if curvature <= 0 else -slope / (2 * curvature)
    vertex = min(max(vertex, x[1] - 0.5), x[1] + 0.5)
    return float(2.0**vertex), (
        f"vertex of the validation loss between lr {ranked[best - 1].lr:.3g} and {ranked[best + 1].lr:.3g} "
        f"(best raced: {chosen.lr:.3g}, val loss {chosen.score:.4f} after {chosen.steps} steps)"
    )


#: The sweep "clearly fell" when its lowest smoothed loss is below this fraction of the starting level (the
#: same test as the finder's trust verdict).
CLEAR_FALL = 0.98
#: The divergence edge is the LR from which the smoothed loss stays above the starting level by more than
#: this fraction; the fallback bracket tops one octave (``EDGE_BACKOFF``) below it: a rising sweep reaches a
#: higher LR than a whole run at its peak survives.
EDGE_RISE = 0.005
EDGE_BACKOFF = 2.0


def _finite_points(sweep: LRFinderResult) -> list[tuple[float, float]]:
    points = [(lr, loss) for lr, loss in zip(sweep.lrs, sweep.smoothed_losses) if math.isfinite(loss)]
    if not points:
        raise ConfigError(
            "max_lr='auto': the LR range test produced no finite loss; give max_lr a number or lower start_lr"
        )
    return points


def _top_of_bracket(sweep: LRFinderResult) -> tuple[float, str]:
    """The top of the race's ladder: the LR at the lowest smoothed loss (where the loss stops falling)."""
    lowest_lr, _ = min(_finite_points(sweep), key=lambda point: (point[1], point[0]))
    return float(lowest_lr), f"lowest sweep loss at {lowest_lr:.3g}"


def _edge_of_bracket(sweep: LRFinderResult) -> tuple[float, str] | None:
    """The fallback top when every candidate below the sweep's minimum stalled: one octave below the
    divergence edge, or ``None`` when the sweep's loss clearly fell (its minimum then means what it says).

    A model that needs more than the sweep's updates to leave its initial plateau gives a flat sweep whose
    lowest point is noise and can be its very first LR (seen on Fashion-MNIST cnn28 with SGD: a ladder of
    6e-8 .. 1e-6, every candidate at chance); the edge, where the loss leaves its level for good, is then
    the one feature of the curve that carries information.
    """
    points = _finite_points(sweep)
    start = float(np.median([loss for _, loss in points[: max(3, len(points) // 10)]]))
    if min(loss for _, loss in points) < CLEAR_FALL * start:
        return None
    threshold = start * (1 + EDGE_RISE)
    losses = [loss for _, loss in points]
    for index in range(1, len(points)):
        if all(loss > threshold for loss in losses[index:]):
            edge = points[index][0]
            return float(edge / EDGE_BACKOFF), (
                f"every candidate below the flat sweep's minimum stalled, so the bracket was moved to an "
                f"octave below the sweep's divergence edge at {edge:.3g}"
            )
    return float(points[-1][0]), (
        "every candidate below the flat sweep's minimum stalled, and the sweep never diverged: the bracket "
        "was moved to end at its last LR"
    )


def check_selection_options(options: Mapping[str, Any], field: str = "lr_selection") -> dict[str, Any]:
    """``options`` when every key is one of :data:`SELECTION_OPTIONS`; else :class:`ConfigError` naming
    ``field``, the key and the allowed ones."""
    for key in options:
        if key not in SELECTION_OPTIONS:
            raise ConfigError(
                f"{field}: unknown option {key!r}; expected one of {', '.join(SELECTION_OPTIONS)} "
                "(the sweep's start_lr, end_lr and num_steps go in sweep_options)"
            )
    return dict(options)


def select_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    train_data: Any,
    schedules: Mapping[str, Any],
    *,
    total_steps: int,
    method: str = "race",
    budget: float = DEFAULT_BUDGET,
    candidates: int = DEFAULT_CANDIDATES,
    val_data: Any = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    refine_vertex: bool = True,
    rule: str = "valley",
    sweep_options: Mapping[str, Any] | None = None,
    trainer_options: Mapping[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> LRSelection:
    """Choose the peak learning rate for ``schedules`` (those with ``max_lr="auto"``) by sweep + race.

    ``model`` and ``optimizer`` are left untouched: every sweep and candidate trains a deep copy (taken
    together with ``callbacks``, so a callback holding parameter groups follows its copy), and the RNG
    states are restored afterwards. A model sharded by FSDP is not copied: the sweep and every candidate
    train it in place from a snapshot of its shards and optimizer state, restored after each.
    ``trainer_options`` are the run's :class:`~cadence.train.Trainer`
    arguments that shape a training step (``precision``, ``grad_clip``, ``accumulation_steps``,
    ``label_smoothing``, ``num_classes``, ``device``, ``channels_last``, ``metrics``); ``callbacks`` those of
    the run's callbacks that change what a step computes (mixup, FreezeOut, gradual unfreezing).
    ``val_data`` defaults to ``val_fraction`` of ``train_data`` held out (:func:`holdout_split`).

    ``method="race"``: see the module docstring; ``budget`` is the race's cost in training runs (steps summed
    over all candidates and rounds, divided by ``total_steps``) and ``candidates`` the number of LRs raced.
    With ``refine_vertex`` the best finalist is moved to the vertex of a parabola through it and its
    neighbours (:func:`refine`).
    ``method="sweep"``: the sweep's ``rule`` suggestion (``valley``, ``steepest`` or ``minimum``), no race.
    Under ``torch.distributed`` all ranks run the same sweep and race in lockstep (gradients and validation
    results are averaged over ranks) and rank 0's choice is broadcast.

    Example (a plain loop)::

        schedule = one_cycle(max_lr="auto", total_steps=1500)
        selection = select_lr(model, optimizer, cross_entropy, loader, {"lr": schedule}, total_steps=1500)
        schedule = schedule.with_lr(selection.value)
    """
    if method not in SELECTION_METHODS:
        raise ConfigError(
            f"lr_selection.method must be one of {', '.join(SELECTION_METHODS)}, got {method!r}"
        )
    if not (isinstance(budget, (int, float)) and 0 < budget <= 10):
        raise ConfigError(
            f"lr_selection.budget must be a number in (0, 10] (runs' worth of steps), got {budget!r}"
        )
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not 2 <= candidates <= 12:
        raise ConfigError(f"lr_selection.candidates must be a whole number in [2, 12], got {candidates!r}")
    options = dict(trainer_options or {})
    say = log or (lambda message: None)
    rng = capture_rng_state()
    try:
        if val_data is None:
            train_part, val_part = holdout_split(train_data, val_fraction, seed)
        else:
            train_part, val_part = train_data, val_data
        sweep = _run_sweep(
            model, optimizer, loss_fn, train_part, callbacks, options, sweep_options, rule, seed
        )
        sweep_steps = len(sweep.lrs) * int(sweep.options.get("repeats", 1))
        if method == "sweep":
            value = float(sweep.suggestion)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError("max_lr='auto': the LR range test found no usable learning rate")
            reason = f"the range test's {rule} suggestion (no race)"
            ladder, entries, race_steps = [], [], 0
        else:

            def race_below(top: float, bracket: str) -> tuple[list[float], list[RaceEntry]]:
                ladder = candidate_ladder(top, candidates)
                say(
                    f"LR race: {candidates} candidates {ladder[0]:.3g} .. {ladder[-1]:.3g} ({bracket}), "
                    f"budget {budget:g} x {total_steps} steps"
                )
                entries = _race(
                    model,
                    optimizer,
                    loss_fn,
                    train_part,
                    val_part,
                    schedules,
                    callbacks,
                    options,
                    ladder=ladder,
                    total_steps=total_steps,
                    budget_steps=int(budget * total_steps),
                    seed=seed,
                    say=say,
                )
                return ladder, entries

            top, bracket = _top_of_bracket(sweep)
            ladder, entries = race_below(top, bracket)
            race_steps = sum(entry.steps for entry in entries)
            fallback = _edge_of_bracket(sweep) if _all_stalled(entries) else None
            if fallback is not None and fallback[0] > 2 * top:  # the first race is kept in the cost only
                top, bracket = fallback
                ladder, entries = race_below(top, bracket)
                race_steps += sum(entry.steps for entry in entries)
            final_round = max(entry.round for entry in entries)
            finalists = [entry for entry in entries if entry.round == final_round]
            best = min(finalists, key=lambda entry: (entry.score, entry.lr))
            if not math.isfinite(best.score):
                raise ConfigError(
                    "max_lr='auto': every race candidate diverged; lower lr_selection start/end LRs or give "
                    "max_lr a number"
                )
            value, why = refine(finalists) if refine_vertex else (best.lr, "lowest validation loss")
            reason = f"{why}; {len(finalists)} finalists of {candidates} candidates ({bracket})"
            if _all_stalled(entries):
                reason += "; every candidate stalled: the bracket may be too low, check the curve"
    finally:
        restore_rng_state(rng)
    value = float(distributed.broadcast_object(value))
    return LRSelection(
        value=value,
        method=method,
        reason=reason,
        sweep=sweep,
        candidates=ladder,
        entries=entries,
        run_steps=int(total_steps),
        sweep_steps=sweep_steps,
        race_steps=race_steps,
        options={
            "method": method,
            "budget": budget,
            "candidates": candidates,
            "val_fraction": None if val_data is not None else val_fraction,
            "refine_vertex": refine_vertex,
            "rule": rule,
            "seed": seed,
            "sweep": {**SWEEP_DEFAULTS, **dict(sweep_options or {})},
        },
    )


def _all_stalled(entries: list[RaceEntry]) -> bool:
    first = [entry for entry in entries if entry.round == 0]
    return bool(first) and all(entry.status == "stalled" for entry in first)


def _copies(model: nn.Module, optimizer: torch.optim.Optimizer, callbacks: list[Any] | None):
    """Deep copies of the model, optimizer and callbacks, taken together; a sharded (FSDP) model is not
    copied (each rank would hold a second copy of its shards and FSDP's hooks): it trains in place from a
    :class:`TrainingSnapshot` of its shards, restored after (see :func:`_race`), and only the callbacks are
    copied."""
    if distributed.is_sharded(model):
        return model, optimizer, copy.deepcopy(list(callbacks or []))
    return copy.deepcopy((model, optimizer, list(callbacks or [])))


def _run_sweep(model, optimizer, loss_fn, train_part, callbacks, options, sweep_options, rule, seed):
    model_copy, optimizer_copy, callback_copies = _copies(model, optimizer, callbacks)
    sweep_kwargs = {**SWEEP_DEFAULTS, "progress": False, **dict(sweep_options or {})}
    precision = options.get("precision")
    # Under data parallelism the copy is wrapped in DDP, so the sweep's gradients are averaged over ranks;
    # a sharded model reduces its own gradients, and find_lr restores its shards after the sweep.
    return find_lr(
        model_copy if distributed.is_sharded(model_copy) else distributed.wrap_model(model_copy),
        optimizer_copy,
        loss_fn,
        train_part,
        method=rule,
        seed=seed,
        precision=None if precision in (None, "fp32") else precision,
        accumulation_steps=int(options.get("accumulation_steps", 1)),
        grad_clip=options.get("grad_clip"),
        label_smoothing=float(options.get("label_smoothing") or 0.0),
        num_classes=options.get("num_classes"),
        batch_callbacks=[c for c in callback_copies if getattr(c, "produces_soft_targets", False)],
        device=options.get("device"),
        **sweep_kwargs,
    )


def _race(
    model,
    optimizer,
    loss_fn,
    train_part,
    val_part,
    schedules,
    callbacks,
    options,
    *,
    ladder,
    total_steps,
    budget_steps,
    seed,
    say,
) -> list[RaceEntry]:
    from cadence.train.trainer import Trainer  # the race trains with the run's own training step

    entries: list[RaceEntry] = []
    alive = list(ladder)
    plan = race_plan(len(ladder), budget_steps)
    # FSDP: every candidate trains the sharded model itself, from its shards as they are now
    start = TrainingSnapshot(model, optimizer) if distributed.is_sharded(model) else None
    if start is not None:
        options = {**options, "strategy": "fsdp"}
    try:
        for index, (_, steps) in enumerate(plan):
            steps = min(steps, total_steps)
            factor = total_steps / steps
            round_entries = []
            for lr in alive:
                if start is not None:
                    start.restore()
                model_copy, optimizer_copy, callback_copies = _copies(model, optimizer, callbacks)
                compressed = {name: _compressed(schedule, lr, factor) for name, schedule in schedules.items()}
                trainer = Trainer(
                    model_copy,
                    optimizer_copy,
                    loss_fn,
                    train_part,
                    total_steps=steps,
                    schedules=compressed,
                    eval_data=val_part,
                    callbacks=callback_copies,
                    run_dir=None,
                    seed=seed,
                    progress=False,
                    checkpoint_every_epochs=None,
                    eval_every_epochs=None,
                    log=_quiet,  # a stalled or diverged candidate is a result of the race, not a problem
                    **options,
                )
                state = trainer.fit()
                score = float(state.metrics.get("val_loss", math.inf))
                status = trainer.status or "completed"
                if status == "diverged" or not math.isfinite(score):
                    score = math.inf
                entry = RaceEntry(lr, index, steps, score, dict(state.metrics), status)
                round_entries.append(entry)
                accuracy = state.metrics.get("val_accuracy")
                say(
                    f"  round {index + 1}/{len(plan)} lr {lr:.4g}: val loss {score:.4f}"
                    + (f", val acc {100 * accuracy:.1f}%" if accuracy is not None else "")
                    + f" ({steps} steps{', diverged' if status == 'diverged' else ''})"
                )
                del model_copy, optimizer_copy, trainer
            entries.extend(round_entries)
            if index + 1 < len(plan):
                keep = plan[index + 1][0]
                ranked = sorted(round_entries, key=lambda entry: (entry.score, entry.lr))
                alive = sorted(entry.lr for entry in ranked[:keep])
    finally:
        if start is not None:
            start.restore()  # the caller's sharded model as it was
    return entries


def _quiet(line: str) -> None:
    """Where the candidates' notes go: nowhere."""


@dataclasses.dataclass(frozen=True)
class _TimeScaled:
    """A callable schedule of ``step`` played ``factor`` times faster (cadence's own use ``compress``)."""

    schedule: Callable[[int], float]
    factor: float

    def __call__(self, step: int) -> float:
        return float(self.schedule(int(step * self.factor)))


def _compressed(schedule: Any, lr: float, factor: float) -> Any:
    """``schedule`` with an "auto" LR set to ``lr``, played ``factor`` times faster; numbers pass through."""
    from cadence.schedules import Schedule, compress

    if needs_lr_finder(schedule):
        schedule = schedule.with_lr(lr)
    if isinstance(schedule, Schedule):
        return compress(schedule, factor)
    return _TimeScaled(schedule, factor) if callable(schedule) else schedule
