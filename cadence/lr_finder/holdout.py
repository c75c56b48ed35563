"""Carve a validation split out of training data, so that choosing an LR never looks at the test set."""

from __future__ import annotations

from typing import Any

import torch

from cadence.errors import ConfigError

__all__ = ["holdout_split"]


def holdout_split(train_data: Any, fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """Split ``train_data`` into ``(train_part, validation_part)`` with ``fraction`` of it held out.

    The split is a pure function of ``seed``: every candidate of an LR race (and every rank of a data-parallel
    run) sees the same held-out examples.

    - a :class:`~cadence.data.TensorLoader` is split by example; both parts keep its batch size, and the
      training part keeps its shuffling, augmentation and rank shard (the validation part is served in order,
      unaugmented, sharded the same way so that evaluation is averaged over ranks);
    - a torch ``DataLoader`` over a map-style dataset is split with ``torch.utils.data.random_split`` and
      rebuilt with the same batch size, workers and collate function;
    - a list or tuple of batches is split by batch (about ``fraction`` of them, evenly spaced, at least one).
    """
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ConfigError(f"val_fraction must be a number in (0, 1), got {fraction=}")
    generator = torch.Generator().manual_seed(int(seed))
    inputs, targets = getattr(train_data, "inputs", None), getattr(train_data, "targets", None)
    if isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor):
        return _split_tensor_loader(train_data, fraction, generator)
    if isinstance(train_data, torch.utils.data.DataLoader):
        return _split_data_loader(train_data, fraction, generator)
    if isinstance(train_data, (list, tuple)):
        if len(train_data) < 2:
            raise ConfigError(
                f"{len(train_data)} batch is too few to hold some out for validation; pass val_data"
            )
        count = max(1, round(len(train_data) * fraction))
        every = max(2, len(train_data) // count)
        chosen = {index for index in range(every - 1, len(train_data), every)}
        held_out = [batch for index, batch in enumerate(train_data) if index in chosen]
        kept = [batch for index, batch in enumerate(train_data) if index not in chosen]
        return kept, held_out
    raise ConfigError(
        f"cannot carve a validation split out of {type(train_data).__name__}: pass val_data (a loader of "
        "held-out training examples), or use a cadence.data.TensorLoader, a DataLoader or a list of batches"
    )


def _held_out_count(total: int, fraction: float) -> int:
    count = round(total * fraction)
    if count < 1 or count >= total:
        raise ConfigError(f"val_fraction={fraction} of {total} examples leaves an empty split; pass val_data")
    return count


def _split_tensor_loader(loader: Any, fraction: float, generator: torch.Generator) -> tuple[Any, Any]:
    from cadence.data import TensorLoader

    total = len(loader.targets)
    order = torch.randperm(total, generator=generator).to(loader.inputs.device)
    count = _held_out_count(total, fraction)
    held_out, kept = order[:count].sort().values, order[count:].sort().values
    shard = {"rank": loader.rank, "world_size": loader.world_size}
    train_part = TensorLoader(
        loader.inputs[kept],
        loader.targets[kept],
        loader.batch_size,
        shuffle=loader.shuffle,
        drop_last=loader.drop_last,
        seed=loader.seed,
        augment=loader.augment,
        **shard,
    )
    validation_part = TensorLoader(
        loader.inputs[held_out], loader.targets[held_out], max(loader.batch_size, 256), shuffle=False, **shard
    )
    return train_part, validation_part


def _split_data_loader(loader: torch.utils.data.DataLoader, fraction: float, generator: torch.Generator):
    dataset = loader.dataset
    try:
        total = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(
            "cannot carve a validation split out of an iterable dataset; pass val_data"
        ) from None
    count = _held_out_count(total, fraction)
    kept, held_out = torch.utils.data.random_split(dataset, [total - count, count], generator=generator)
    shuffle = isinstance(loader.sampler, torch.utils.data.RandomSampler)
    options = {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
    }
    train_part = torch.utils.data.DataLoader(kept, shuffle=shuffle, drop_last=loader.drop_last, **options)
    return train_part, torch.utils.data.DataLoader(held_out, shuffle=False, **options)
