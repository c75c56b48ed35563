"""Feeding the sweep: cycle through any kind of training data, with one data order per repeat."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from cadence.data.batches import epoch_batches, move_to_device
from cadence.errors import ConfigError

__all__ = ["batch_stream", "to_device"]


def to_device(value: Any, device: torch.device) -> Any:
    """Move the tensors in ``value`` (a tensor, or lists/tuples/dicts of them) to ``device``
    (:func:`cadence.data.batches.move_to_device`)."""
    return move_to_device(value, torch.device(device))


def batch_stream(data: Any, repeat: int, repeats: int, seed: int) -> Iterator[Any]:
    """Cycle through ``data`` forever; repeat ``r`` of ``repeats`` sees its own data order.

    A ``TensorLoader`` walks epochs ``r, r + repeats, r + 2·repeats, ...`` (its order is a function of the
    epoch); a sampler with ``set_epoch`` is given those epochs; a list or tuple of batches is permuted with a
    seeded generator for ``r > 0``; a ``DataLoader`` with ``shuffle=True`` draws its order from torch's global
    generator, which the caller seeds per repeat.
    """
    items = data
    if repeat > 0 and isinstance(data, Sequence) and not callable(getattr(data, "batches", None)):
        order = np.random.default_rng(seed + repeat).permutation(len(data))
        items = [data[int(i)] for i in order]
    epoch = repeat
    while True:
        count = 0
        for batch in epoch_batches(items, epoch):  # the Trainer's data protocol
            count += 1
            yield batch
        if count == 0:
            raise ConfigError(
                "train_data yielded no batches; pass a re-iterable (a TensorLoader, a DataLoader or a list "
                "of (inputs, targets) batches), not a one-shot iterator"
            )
        epoch += repeats
