"""Class counts and one-hot targets, which label smoothing needs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cadence.data.batches import epoch_batches, move_to_device, split_batch
from cadence.errors import ConfigError
from cadence.train import checkpoint as checkpoints

__all__ = ["data_num_classes", "infer_num_classes", "output_classes", "smoothed_one_hot"]


def smoothed_one_hot(
    targets: torch.Tensor, num_classes: int, smoothing: float, *, check_labels: bool = True
) -> torch.Tensor:
    """Integer class targets as (smoothed) one-hot rows (see :func:`cadence.regularization.one_hot`)."""
    # Imported here: only runs with label smoothing need the regularization module.
    from cadence.regularization import one_hot

    return one_hot(targets, num_classes, smoothing=smoothing, check_labels=check_labels)


def data_num_classes(data: Any) -> int | None:
    """A ``num_classes`` attribute of ``data`` or of its ``dataset``, else ``None``."""
    for holder in (data, getattr(data, "dataset", None)):
        value = getattr(holder, "num_classes", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def output_classes(model: nn.Module, data: Any, device: torch.device, channels_last: bool) -> int:
    """The last dimension of the model's output on the first batch of ``data`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            inputs, _ = split_batch(next(epoch_batches(data, 0)))
            outputs = model(move_to_device(inputs, device, channels_last))
    finally:
        model.train(was_training)
    if not isinstance(outputs, torch.Tensor) or outputs.dim() < 2:
        raise ConfigError("label_smoothing needs num_classes: pass num_classes=... to the Trainer")
    return int(outputs.shape[-1])


def infer_num_classes(model: nn.Module, data: Any, device: torch.device, channels_last: bool) -> int:
    """:func:`output_classes` with every RNG state put back, so the run's random streams are untouched."""
    rng = checkpoints.capture_rng_state()
    try:
        return output_classes(model, data, device, channels_last)
    finally:
        checkpoints.restore_rng_state(rng)
