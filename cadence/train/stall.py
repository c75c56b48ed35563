"""Telling a run that trained from one that only ran: the training loss must fall, accuracy must leave chance.

A run that ends at chance accuracy with status "completed" is the most expensive kind of silent failure.
:class:`LossTrend` follows the training loss with two numbers that a checkpoint carries (the mean of the
first steps' losses and an exponential average of the recent ones); :func:`stall_message` judges them at the
end of ``fit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["FIRST_STEPS", "MIN_STEPS", "RELATIVE_DROP", "stall_message", "update_trend"]

#: The start of the run is the mean loss of this many first steps.
FIRST_STEPS = 10
#: Runs shorter than this are not judged.
MIN_STEPS = 20
#: The recent loss must be at least this much (relative) below the start.
RELATIVE_DROP = 0.05


def update_trend(loss_start: float, loss_average: float, step: int, loss: float, total_steps: int):
    """``(loss_start, loss_average)`` after the loss of ``step`` (0-based): the running mean of the first
    :data:`FIRST_STEPS` losses, and an exponential average over about the last 5% of the run."""
    if step < FIRST_STEPS:
        loss_start = loss if step == 0 else loss_start + (loss - loss_start) / (step + 1)
    weight = 1.0 / max(FIRST_STEPS, round(0.05 * total_steps))
    loss_average = loss if step == 0 else loss_average + weight * (loss - loss_average)
    return loss_start, loss_average


def stall_message(
    *,
    steps: int,
    loss_start: float,
    loss_average: float,
    metrics: Mapping[str, float],
    num_classes: int | None,
    lr_peak: float | None,
    precision: str,
) -> str | None:
    """Why the run stalled, or ``None`` when it trained.

    Stalled: the recent training loss is not :data:`RELATIVE_DROP` below the first steps' loss, or the final
    ``val_accuracy`` is at chance (at most ``min(1.5 / K, 1 / K + 0.05)`` for ``K`` classes).

    >>> stall_message(steps=100, loss_start=2.30, loss_average=2.29, metrics={}, num_classes=None,
    ...               lr_peak=0.6, precision="fp32") is not None
    True
    >>> stall_message(steps=100, loss_start=2.30, loss_average=0.4, metrics={"val_accuracy": 0.9},
    ...               num_classes=10, lr_peak=0.1, precision="fp32") is None
    True
    """
    if steps < MIN_STEPS or not (math.isfinite(loss_start) and math.isfinite(loss_average)):
        return None
    reasons = []
    if loss_average > (1.0 - RELATIVE_DROP) * loss_start:
        reasons.append(
            f"the training loss did not fall ({loss_start:.4g} in the first steps, {loss_average:.4g} at the "
            "end)"
        )
    accuracy = metrics.get("val_accuracy")
    if accuracy is not None and num_classes and num_classes > 1:
        chance = 1.0 / num_classes
        if accuracy <= min(1.5 * chance, chance + 0.05):
            reasons.append(f"val_accuracy {100 * accuracy:.1f}% is at chance for {num_classes} classes")
    if not reasons:
        return None
    causes = []
    if lr_peak is not None:
        causes.append(
            f"the learning rate (it peaked at {lr_peak:.3g}): too high makes the loss jump out of the basin, "
            "too low leaves it where it started; try max_lr='auto' (the LR race) or a value 3-10x lower"
        )
    if precision != "fp32":
        causes.append(f"precision={precision!r}: rerun with fp32 to rule it out")
    return (
        "training stalled: "
        + "; ".join(reasons)
        + ". Likely cause: "
        + ("; or ".join(causes) or "the set-up")
    )
