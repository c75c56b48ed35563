"""The data protocol: how every loop walks its data (a loader with ``batches(epoch, start)``, a DataLoader,
or an iterable of batches).

The Trainer, its evaluation, the LR range test and SWA's batch-norm update all walk data with
:func:`epoch_batches`, take batches apart with :func:`split_batch` and move them with
:func:`move_to_device`.

Exact resume needs to start an epoch at batch ``start`` with the same order as an uninterrupted run:

- a loader with ``batches(epoch, start)`` (``cadence.data.TensorLoader``) derives its order from
  ``(seed, epoch)`` and starts there directly;
- a torch ``DataLoader`` gets ``sampler.set_epoch(epoch)`` when its sampler has it (``DistributedSampler``);
  its shuffling draws from torch's global generator, so the Trainer replays the generator state of the
  epoch's start while it skips the consumed batches (see :func:`skip_batches`);
- any other re-iterable of ``(inputs, targets)`` pairs is iterated again and the consumed batches skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from cadence.errors import ConfigError

__all__ = ["count_batches", "epoch_batches", "move_to_device", "split_batch"]


def epoch_batches(data: Any, epoch: int, start: int = 0) -> Iterator[Any]:
    """An iterator over the batches of ``epoch`` from batch index ``start``."""
    batches = getattr(data, "batches", None)
    if callable(batches):
        return iter(batches(epoch, start))
    for holder in (getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        set_epoch = getattr(holder, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
    iterator = iter(data)
    for index in range(start):
        try:
            next(iterator)
        except StopIteration:
            raise ConfigError(
                f"resume: the data has fewer than {start} batches in epoch {epoch} (ended after {index}); "
                "resume with the same data and batch size"
            ) from None
    return iterator


def count_batches(data: Any) -> int:
    """Batches per epoch: ``len(data)`` when defined, else by iterating once (re-iterables only)."""
    try:
        return len(data)
    except TypeError:
        pass
    if iter(data) is data:
        raise ConfigError(
            "train_data is a one-shot iterator; pass a re-iterable (a list of batches, a DataLoader or a "
            "cadence.data.TensorLoader) so that every epoch can walk it again"
        )
    return sum(1 for _ in data)


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` from a pair; anything else is an error naming the expected shape."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ConfigError(
        f"each batch must be a pair (inputs, targets); got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    )


def move_to_device(value: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move tensors (also inside tuples, lists and dicts) to ``device``; 4-d inputs to channels_last."""
    if isinstance(value, torch.Tensor):
        if value.device != device:
            value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(move_to_device(item, device, channels_last) for item in value)
    if isinstance(value, dict):
        return {key: move_to_device(item, device, channels_last) for key, item in value.items()}
    return value
