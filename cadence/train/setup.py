"""Setting up a fit: the model on its device, the training data sharded and counted, the progress display."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError
from cadence.train.batches import count_batches
from cadence.train.callback import Callback

__all__ = ["count_train_batches", "prepare_model", "progress_callbacks", "shard_train_data"]


def prepare_model(
    model: nn.Module,
    device: torch.device,
    *,
    channels_last: bool,
    compile: bool,
    callbacks: Sequence[Callback],
) -> tuple[Callable[..., Any], nn.Module | None]:
    """Move ``model`` to ``device``; returns what runs the forward pass and the DDP wrapper (or ``None``)."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # Under DDP, callbacks that freeze or unfreeze layers mid-run need every parameter registered.
    trainable_changes = distributed.is_distributed() and distributed.changes_trainable(callbacks)
    forward_model = distributed.wrap_model(model, device, trainable_changes=trainable_changes)
    ddp = forward_model if forward_model is not model else None
    if compile:
        forward_model = torch.compile(forward_model)
    return forward_model, ddp


def shard_train_data(train_data: Any, seed: int) -> Any:
    """Under ``torch.distributed``, a DataLoader rebuilt so each rank reads its own shard; else unchanged."""
    if distributed.is_distributed() and isinstance(train_data, torch.utils.data.DataLoader):
        # Each rank reads its own disjoint shard, reshuffled per epoch. Evaluation data is not sharded
        # this way: DistributedSampler pads with repeated examples, which would bias the metrics.
        return distributed.shard_dataloader(train_data, seed=seed)
    return train_data


def count_train_batches(train_data: Any) -> int:
    """Batches per epoch of the training data; none at all is an error."""
    batches = count_batches(train_data)
    if batches == 0:
        raise ConfigError("train_data yielded no batches")
    return batches


def progress_callbacks(progress: str | bool | None, is_main_process: bool) -> list[Callback]:
    """The progress display the ``progress`` option asks for, on the main process only."""
    if progress in (False, None, "off") or not is_main_process:
        return []
    # Imported here: the callbacks package builds on this one.
    from cadence.callbacks.progress import ProgressBar

    return [ProgressBar(mode="auto" if progress in ("auto", True) else progress)]
