"""What one training micro-batch goes through before the forward pass, shared by every loop that trains.

The Trainer, the LR range test and the LR race all call :func:`prepare_batch`, so a label-smoothed or mixed
run is swept and raced with exactly the targets it is trained on.
"""

from __future__ import annotations

from typing import Any

import torch

from cadence.train.batches import move_to_device, split_batch
from cadence.train.targets import smoothed_one_hot

__all__ = ["prepare_batch"]


def prepare_batch(
    batch: Any,
    device: torch.device,
    *,
    channels_last: bool = False,
    label_smoothing: float = 0.0,
    num_classes: int | None = None,
    label_errors: list[torch.Tensor] | None = None,
) -> tuple[Any, Any]:
    """``(inputs, targets)`` on ``device``; integer class targets become smoothed one-hot rows when
    ``label_smoothing > 0`` (which then needs ``num_classes``).

    The labels' range is checked on the host, unless ``label_errors`` is given: then a 0-dimensional bool
    tensor (true when a label lies outside ``[0, num_classes)``) is appended to it for the caller to read
    later, and nothing is read per batch.
    """
    inputs, targets = split_batch(batch)
    inputs = move_to_device(inputs, device, channels_last)
    targets = move_to_device(targets, device)
    if label_smoothing and isinstance(targets, torch.Tensor) and not targets.is_floating_point():
        if num_classes is None:
            from cadence.errors import ConfigError

            raise ConfigError("label_smoothing needs num_classes for integer class targets")
        if label_errors is None:
            targets = smoothed_one_hot(targets, int(num_classes), label_smoothing)
        else:
            label_errors.append(((targets < 0) | (targets >= int(num_classes))).any())
            targets = smoothed_one_hot(targets, int(num_classes), label_smoothing, check_labels=False)
    return inputs, targets
