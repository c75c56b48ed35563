"""The LR range test itself: ``find_lr``.

Leslie N. Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017), section 3.3, and
"A disciplined approach to neural network hyper-parameters: Part 1" (2018) for the weight-decay sweep.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.hyperparams import set_hyperparams
from cadence.lr_finder.batches import batch_stream
from cadence.lr_finder.result import LRCurve, LRFinderResult, assess_trust
from cadence.lr_finder.state import TrainingSnapshot
from cadence.lr_finder.suggestions import METHODS, suggest
from cadence.precision import Precision
from cadence.train.evaluation import evaluate_model
from cadence.train.step import backward_micro_batch, gradient_sync, prepare_batch

__all__ = ["choose_weight_decay", "find_lr", "planned_lrs"]

MODES = ("exp", "linear")
PRECISIONS = (None, "fp32", "bf16", "fp16")


def planned_lrs(start_lr: float, end_lr: float, num_steps: int, mode: str = "exp") -> np.ndarray:
    """The learning rates of a sweep: ``start_lr · (end_lr / start_lr)^(i / (num_steps - 1))`` for
    ``mode="exp"``, evenly spaced for ``mode="linear"``; ``i = 0 .. num_steps - 1``, one per optimizer update.

    >>> planned_lrs(1e-3, 1e-1, 3).tolist()
    [0.001, 0.01, 0.1]
    """
    if mode == "exp":
        return np.geomspace(start_lr, end_lr, num_steps)
    return np.linspace(start_lr, end_lr, num_steps)


def _validate(
    start_lr,
    end_lr,
    num_steps,
    mode,
    smoothing,
    diverge_factor,
    accumulation_steps,
    precision,
    repeats,
    weight_decays,
    method,
) -> None:
    if not (isinstance(start_lr, (int, float)) and start_lr > 0):
        raise ConfigError(f"start_lr must be a number > 0, got {start_lr=}")
    if not (isinstance(end_lr, (int, float)) and end_lr > start_lr):
        raise ConfigError(f"end_lr must be a number > start_lr ({start_lr}), got {end_lr=}")
    if not (isinstance(num_steps, int) and num_steps >= 2):
        raise ConfigError(f"num_steps must be an integer >= 2, got {num_steps=}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode=}")
    if not (0.0 <= smoothing < 1.0):
        raise ConfigError(f"smoothing must be in [0, 1), got {smoothing=}")
    if not diverge_factor > 1.0:
        raise ConfigError(f"diverge_factor must be > 1, got {diverge_factor=}")
    if not (isinstance(accumulation_steps, int) and accumulation_steps >= 1):
        raise ConfigError(f"accumulation_steps must be an integer >= 1, got {accumulation_steps=}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of fp32, bf16, fp16 (or None), got {precision=}")
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ConfigError(f"repeats must be an integer >= 1, got {repeats=}")
    if weight_decays is not None and (
        len(weight_decays) == 0 or any(not isinstance(w, (int, float)) or w < 0 for w in weight_decays)
    ):
        raise ConfigError(f"weight_decays must be a non-empty list of numbers >= 0, got {weight_decays=}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method=}")


# --------------------------------------------------------------------------------------------- helpers
def _distributed() -> tuple[bool, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True, torch.distributed.get_world_size()
    return False, 1


def _mean_over_ranks(value: torch.Tensor, distributed: bool, world_size: int) -> float:
    if distributed and world_size > 1:
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
        value = value / world_size
    return float(value.item())


def _validation_loss(model, loss_fn, val_data, amp, device) -> float:
    """The Trainer's evaluation (:func:`cadence.train.evaluation.evaluate_model`): the sample-weighted mean
    loss over ``val_data``, averaged over ranks by sample count."""
    return evaluate_model(model, val_data, loss_fn, metrics=(), device=device, precision=amp)["val_loss"]


def _sweep(
    model,
    optimizer,
    loss_fn,
    stream,
    lrs,
    *,
    smoothing,
    diverge_factor,
    val_data,
    accumulation_steps,
    amp,
    device,
    bar,
    step_options,
) -> tuple[list[float], list[float], list[float], str]:
    """Run one sweep; returns (lrs tried, raw losses, smoothed losses, stop reason).

    ``step_options`` shape each update as the Trainer's do: ``grad_clip``, ``label_smoothing`` with
    ``num_classes``, and ``batch_callbacks`` whose ``on_batch_start`` replaces the batch (mixup).
    """
    distributed, world_size = _distributed()
    grad_clip = step_options.get("grad_clip")
    smoothing_targets = float(step_options.get("label_smoothing") or 0.0)
    num_classes = step_options.get("num_classes")
    batch_callbacks = list(step_options.get("batch_callbacks") or ())
    hook_state = None
    if batch_callbacks:
        from cadence.train.state import TrainState

        hook_state = TrainState(
            model=model,
            optimizer=optimizer,
            total_steps=len(lrs),
            steps_per_epoch=len(lrs),
            seed=int(step_options.get("seed", 0)),
            num_classes=num_classes,
        )
    tried: list[float] = []
    losses: list[float] = []
    smoothed_losses: list[float] = []
    average, best = 0.0, math.inf
    stop_reason = "completed"
    model.train()
    for step, lr in enumerate(lrs):
        set_hyperparams(optimizer, step, lr=float(lr))  # multiplies by each group's lr_scale
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for micro in range(accumulation_steps):
            inputs, targets = prepare_batch(
                next(stream), device, label_smoothing=smoothing_targets, num_classes=num_classes
            )
            if hook_state is not None:
                hook_state.step, hook_state.batch_index = step, step * accumulation_steps + micro
                hook_state.batch = (inputs, targets)
                for callback in batch_callbacks:
                    callback.on_batch_start(hook_state)
                inputs, targets = hook_state.batch
            # the Trainer's micro-batch: gradients reduced over ranks on the last micro-batch only
            final = micro == accumulation_steps - 1
            with gradient_sync(model, final=final, group_size=accumulation_steps):
                _, loss = backward_micro_batch(model, loss_fn, inputs, targets, amp, accumulation_steps)
            total += loss.detach().double()
        amp.step(optimizer, None, grad_clip)
        if val_data is not None:
            value = _validation_loss(model, loss_fn, val_data, amp, device)
        else:
            # Averaged over ranks so every rank sees the same curve and stops at the same step.
            value = _mean_over_ranks(total / accumulation_steps, distributed, world_size)
        tried.append(float(lr))
        losses.append(value)
        if bar is not None:
            bar.update(1)
        if not math.isfinite(value):
            smoothed_losses.append(float("nan"))
            stop_reason = "non_finite"
            break
        average = smoothing * average + (1.0 - smoothing) * value
        smoothed = average / (1.0 - smoothing ** (step + 1))  # bias correction, as in Adam
        smoothed_losses.append(smoothed)
        best = min(best, smoothed)
        if step > 0 and best > 0 and smoothed > diverge_factor * best:
            stop_reason = "diverged"
            break
    return tried, losses, smoothed_losses, stop_reason


def _geometric_means(curves: list[LRCurve]) -> dict[str, float]:
    result = {}
    for name in METHODS:
        values = [c.suggestions[name] for c in curves if name in c.suggestions]
        if values:
            result[name] = float(10 ** np.mean(np.log10(values)))
    return result


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return None
    if (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_rank()
    ):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="find_lr", leave=False)


def choose_weight_decay(rows: Sequence[dict[str, Any]], tolerance: float = 0.02) -> float:
    """Smith's rule for the weight-decay sweep: the largest LR at the lowest loss.

    ``rows`` hold ``weight_decay``, ``min_loss`` (lowest smoothed loss of its sweep) and ``suggestion``
    (its suggested LR). Among the rows whose ``min_loss`` is within ``tolerance`` (relative) of the best
    ``min_loss``, return the weight decay with the largest suggestion (ties: the lower loss).

    >>> choose_weight_decay([{"weight_decay": 0.0, "min_loss": 1.0, "suggestion": 0.1},
    ...                      {"weight_decay": 1e-4, "min_loss": 1.01, "suggestion": 0.3},
    ...                      {"weight_decay": 1e-2, "min_loss": 1.5, "suggestion": 1.0}])
    0.0001
    """
    usable = [row for row in rows if math.isfinite(row["min_loss"]) and math.isfinite(row["suggestion"])]
    if not usable:
        return rows[0]["weight_decay"]
    best_loss = min(row["min_loss"] for row in usable)
    eligible = [row for row in usable if row["min_loss"] <= best_loss + tolerance * abs(best_loss)]
    return max(eligible, key=lambda row: (row["suggestion"], -row["min_loss"]))["weight_decay"]


# --------------------------------------------------------------------------------------------- find_lr
def find_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    train_data: Any,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    val_data: Any = None,
    accumulation_steps: int = 1,
    precision: str | None = None,
    repeats: int = 1,
    weight_decays: Sequence[float] | None = None,
    method: str = "valley",
    weight_decay_tolerance: float = 0.02,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
    grad_clip: float | None = None,
    label_smoothing: float = 0.0,
    num_classes: int | None = None,
    batch_callbacks: Sequence[Any] = (),
) -> LRFinderResult:
    """Run Smith's LR range test and suggest a learning rate; leave model, optimizer and RNG untouched.

    The LR grows from ``start_lr`` to ``end_lr`` over ``num_steps`` optimizer updates (exponentially, or
    linearly with ``mode="linear"``; see :func:`planned_lrs`), one value per update, so with
    ``accumulation_steps=k`` each LR sees k micro-batches. The LR goes through
    :func:`cadence.set_hyperparams`, so each param group gets ``lr · lr_scale`` and discriminative ratios
    are swept together. After each update the loss (the mean over micro-batches and over ranks under
    ``torch.distributed``, or the validation loss on all of ``val_data`` when given) is recorded raw and
    smoothed with bias correction::

        avg_i = β · avg_{i-1} + (1 - β) · loss_i,   smoothed_i = avg_i / (1 - β^(i+1)),   β = smoothing

    The sweep stops early when ``smoothed_i > diverge_factor · min_j≤i smoothed_j`` or a loss is not finite.

    Everything is put back exactly afterwards, also when the sweep raises or is interrupted: parameters,
    buffers, gradients, train/eval flags, optimizer state (incl. the param groups' lr, momentum,
    weight_decay) and the RNG states of Python, NumPy, torch and CUDA. Each sweep seeds those RNGs with
    ``seed + repeat`` so results are reproducible.

    ``repeats=k`` runs k sweeps with different data orders and reports their spread in ``result.trust``;
    ``weight_decays=[...]`` runs a sweep per weight decay (each group gets ``wd · weight_decay_scale``) and
    chooses, among the weight decays whose lowest smoothed loss is within ``weight_decay_tolerance``
    (relative) of the best one, the one whose suggested LR is largest — Smith's "largest LR at the lowest
    loss". ``precision`` is ``None``/"fp32", "bf16" or "fp16" (autocast; fp16 adds a loss scaler).

    Each update is the Trainer's: ``grad_clip`` clips the global gradient norm (after unscaling),
    ``label_smoothing`` (with ``num_classes``) smooths integer targets, and ``batch_callbacks`` (e.g.
    :class:`cadence.callbacks.Mixup`) replace each micro-batch in their ``on_batch_start``.

    Example::

        result = find_lr(model, optimizer, nn.functional.cross_entropy, loader, end_lr=1.0)
        print(result.summary())
        result.plot("lr_finder.png")
        schedule = one_cycle(max_lr=result.suggestion, total_steps=1000)
    """
    _validate(
        start_lr,
        end_lr,
        num_steps,
        mode,
        smoothing,
        diverge_factor,
        accumulation_steps,
        precision,
        repeats,
        weight_decays,
        method,
    )
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    lrs = planned_lrs(float(start_lr), float(end_lr), num_steps, mode)
    decays: list[float | None] = [None] if weight_decays is None else [float(w) for w in weight_decays]
    curves: list[LRCurve] = []
    snapshot = TrainingSnapshot(model, optimizer, getattr(train_data, "sampler", None))
    bar = _progress_bar(progress, num_steps * repeats * len(decays))
    try:
        for decay in decays:
            for repeat in range(repeats):
                snapshot.restore()
                random.seed(seed + repeat)
                np.random.seed(seed + repeat)
                torch.manual_seed(seed + repeat)
                if decay is not None:
                    try:
                        set_hyperparams(optimizer, 0, weight_decay=decay)
                    except ValueError as error:
                        raise ConfigError(f"weight_decays: {error}") from error
                stream = batch_stream(train_data, repeat, repeats, seed)
                tried, losses, smoothed, reason = _sweep(
                    model,
                    optimizer,
                    loss_fn,
                    stream,
                    lrs,
                    smoothing=smoothing,
                    diverge_factor=diverge_factor,
                    val_data=val_data,
                    accumulation_steps=accumulation_steps,
                    amp=Precision(precision or "fp32", device),
                    device=device,
                    bar=bar,
                    step_options={
                        "grad_clip": grad_clip,
                        "label_smoothing": label_smoothing,
                        "num_classes": num_classes,
                        "batch_callbacks": batch_callbacks,
                        "seed": seed + repeat,
                    },
                )
                curves.append(
                    LRCurve(tried, losses, smoothed, reason, suggest(tried, smoothed), repeat, decay)
                )
    finally:
        snapshot.restore()
        if bar is not None:
            bar.close()

    groups = {decay: [c for c in curves if c.weight_decay == decay] for decay in decays}
    summary_rows: list[dict[str, Any]] = []
    chosen = decays[0]
    if weight_decays is not None:
        for decay, members in groups.items():
            means = _geometric_means(members)
            summary_rows.append(
                {
                    "weight_decay": decay,
                    "min_loss": float(np.mean([c.min_loss for c in members])),
                    "suggestion": means.get(method, next(iter(means.values()), float("nan"))),
                }
            )
        chosen = choose_weight_decay(summary_rows, weight_decay_tolerance)
    members = groups[chosen]
    main = members[0]
    suggestions = _geometric_means(members)
    options = {
        "start_lr": float(start_lr),
        "end_lr": float(end_lr),
        "num_steps": num_steps,
        "mode": mode,
        "smoothing": smoothing,
        "diverge_factor": diverge_factor,
        "accumulation_steps": accumulation_steps,
        "precision": precision,
        "repeats": repeats,
        "weight_decays": None if weight_decays is None else [float(w) for w in weight_decays],
        "weight_decay_tolerance": weight_decay_tolerance,
        "seed": seed,
        "val_data": val_data is not None,
        "grad_clip": grad_clip,
        "label_smoothing": label_smoothing,
        "batch_callbacks": [type(callback).__name__ for callback in batch_callbacks],
    }
    return LRFinderResult(
        lrs=main.lrs,
        losses=main.losses,
        smoothed_losses=main.smoothed_losses,
        suggestions=suggestions,
        method=method,
        trust=assess_trust(suggestions, members, method),
        stop_reason=main.stop_reason,
        curves=curves,
        weight_decay=chosen,
        weight_decay_summary=summary_rows,
        options=options,
    )
