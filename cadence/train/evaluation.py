"""Evaluation: mean loss and metrics of a model over a dataset, usable with or without the Trainer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.data.batches import epoch_batches, move_to_device, split_batch
from cadence.errors import ConfigError
from cadence.precision import Precision

__all__ = ["accuracy", "evaluate_model"]

Metric = Callable[[Any, Any], Any]


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max output is the target class (targets: labels or class probabilities)."""
    if targets.is_floating_point() and targets.dim() == outputs.dim():
        targets = targets.argmax(dim=-1)
    return (outputs.argmax(dim=-1) == targets).double().mean()


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    *,
    metrics: Sequence[str | Metric] = ("accuracy",),
    device: torch.device | str = "cpu",
    precision: Precision | None = None,
    channels_last: bool = False,
    one_hot_classes: int | None = None,
    prefix: str = "val_",
) -> dict[str, float]:
    """Sample-weighted mean of ``loss_fn`` and each metric over ``data``, keys prefixed with ``prefix``.

    ``metrics`` holds ``"accuracy"`` or callables ``metric(outputs, targets) -> number``. With
    ``one_hot_classes`` integer targets are given to the loss as one-hot rows (for losses trained on soft
    targets); metrics always see the original targets. The model runs in eval mode (restored afterwards),
    under ``precision``'s autocast. Sums stay on the device until the end: one synchronisation in total.
    Under ``torch.distributed`` each process evaluates its shard and the means are weighted by sample count.

    >>> evaluate_model(model, [(x, y)], torch.nn.functional.cross_entropy)  # doctest: +SKIP
    {'val_loss': 0.31, 'val_accuracy': 0.91}
    """
    device = torch.device(device)
    autocast = precision.autocast if precision is not None else _no_autocast
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    count = 0
    try:
        for batch in epoch_batches(data, 0):
            inputs, targets = split_batch(move_to_device(batch, device, channels_last))
            with autocast():
                outputs = model(inputs)
                loss_targets = targets
                if one_hot_classes and not targets.is_floating_point():
                    loss_targets = torch.nn.functional.one_hot(targets.long(), one_hot_classes).float()
                values = {"loss": loss_fn(outputs, loss_targets)}
            for metric in metrics:
                if metric == "accuracy":
                    values["accuracy"] = accuracy(outputs, targets)
                else:
                    values[getattr(metric, "__name__", "metric")] = metric(outputs, targets)
            size = len(targets)
            for key, value in values.items():
                value = torch.as_tensor(value, dtype=torch.float64, device=device).detach() * size
                totals[key] = totals[key] + value if key in totals else value
            count += size
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("evaluate: the evaluation data yielded no batches")
    local = {f"{prefix}{key}": (total / count).item() for key, total in totals.items()}
    return distributed.all_reduce_mean(local, weight=count) if distributed.is_distributed() else local


def _no_autocast():
    import contextlib

    return contextlib.nullcontext()
