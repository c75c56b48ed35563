"""One training micro-batch, shared by every loop that trains: the Trainer, the LR range test, the LR race.

- :func:`prepare_batch`: the batch on the device, with the run's targets (label smoothing), so a
  label-smoothed or mixed run is swept and raced with exactly the targets it is trained on;
- :func:`gradient_sync`: gradients reduced over the ranks only on the last micro-batch of an update (DDP's
  ``no_sync()`` on the others, FSDP's ``set_requires_gradient_sync``);
- :func:`backward_micro_batch`: forward under the run's autocast, the loss, and the backward pass of the
  loss divided by the number of micro-batches of the update (so ``k`` of them make one mean-loss update).

The update itself is :meth:`cadence.precision.Precision.apply_step` (unscale, clip, step, scaler update).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cadence.data.batches import move_to_device, split_batch
from cadence.precision import Precision
from cadence.train.targets import smoothed_one_hot
from cadence.weights import is_sharded_module

__all__ = ["backward_micro_batch", "gradient_sync", "prepare_batch"]

_NO_CONTEXT = contextlib.nullcontext()


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


def gradient_sync(
    model: nn.Module, *, final: bool, group_size: int
) -> contextlib.AbstractContextManager[Any]:
    """The context for one micro-batch's backward pass of an update of ``group_size`` micro-batches.

    ``model`` is what the loop trains: under DDP its wrapper, whose gradients are then all-reduced only on
    the ``final`` micro-batch (``no_sync()`` on the others); a model sharded by FSDP reduce-scatters only on
    the final one (``set_requires_gradient_sync``, set here); any other model needs nothing.
    """
    if group_size == 1:  # the common case: one micro-batch per update, nothing to hold back
        return _NO_CONTEXT
    if is_sharded_module(model):
        model.set_requires_gradient_sync(final)
        return _NO_CONTEXT
    no_sync = None if final else getattr(model, "no_sync", None)
    return no_sync() if callable(no_sync) else _NO_CONTEXT


def backward_micro_batch(
    forward: Callable[[Any], Any],
    loss_fn: Callable[[Any, Any], torch.Tensor],
    inputs: Any,
    targets: Any,
    precision: Precision,
    group_size: int = 1,
) -> tuple[Any, torch.Tensor]:
    """``(outputs, loss)`` of ``forward(inputs)`` under ``precision``'s autocast, after the backward pass
    of ``loss / group_size`` (scaled under fp16); the loss returned is the micro-batch's own."""
    with precision.autocast():
        outputs = forward(inputs)
        loss = loss_fn(outputs, targets)
    precision.backward(loss / group_size if group_size > 1 else loss)
    return outputs, loss
