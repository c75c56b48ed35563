"""Feeding the sweep: cycle through any kind of training data, with one data order per repeat."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from cadence.errors import ConfigError

__all__ = ["batch_stream", "to_device"]


def to_device(value: Any, device: torch.device) -> Any:
    """Move the tensors in ``value`` (a tensor, or lists/tuples/dicts of them) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def batch_stream(data: Any, repeat: int, repeats: int, seed: int) -> Iterator[Any]:
    """Cycle through ``data`` forever; repeat ``r`` of ``repeats`` sees its own data order.

    A ``TensorLoader`` walks epochs ``r, r + repeats, r + 2·repeats, ...`` (its order is a function of the
    epoch); a sampler with ``set_epoch`` is given those epochs; a list or tuple of batches is permuted with a
    seeded generator for ``r > 0``; a ``DataLoader`` with ``shuffle=True`` draws its order from torch's global
    generator, which the caller seeds per repeat.
    """
    batches_of_epoch = getattr(data, "batches", None)
    sampler = getattr(data, "sampler", None)
    items = data
    if repeat > 0 and isinstance(data, Sequence) and not callable(batches_of_epoch):
        order = np.random.default_rng(seed + repeat).permutation(len(data))
        items = [data[int(i)] for i in order]
    epoch = repeat
    while True:
        if callable(batches_of_epoch):
            iterator = iter(batches_of_epoch(epoch))
        else:
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(epoch)
            iterator = iter(items)
        count = 0
        for batch in iterator:
            count += 1
            yield batch
        if count == 0:
            raise ConfigError(
                "train_data yielded no batches; pass a re-iterable (a TensorLoader, a DataLoader or a list "
                "of (inputs, targets) batches), not a one-shot iterator"
            )
        epoch += repeats
