"""Setting up a fit: the model on its device, the training data sharded and counted, the progress display."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.data.batches import count_batches
from cadence.errors import ConfigError
from cadence.train import checkpoint as checkpoints
from cadence.train.callback import Callback
from cadence.train.compiling import compile_module

__all__ = [
    "count_train_batches",
    "prepare_model",
    "progress_callbacks",
    "restore_rank_rng",
    "seed_rank",
    "shard_train_data",
]


def prepare_model(
    model: nn.Module,
    device: torch.device,
    *,
    channels_last: bool,
    compile: Mapping[str, Any] | None,
    callbacks: Sequence[Callback],
    strategy: str = "ddp",
    precision: str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[Callable[..., Any], nn.Module | None, nn.Module]:
    """Move ``model`` to ``device``; returns what runs the training forward pass, the DDP wrapper (or
    ``None``) and what runs the evaluation forward pass.

    ``compile`` holds the ``torch.compile`` arguments (``None``: eager). Compiled, both forward passes run
    the compiled module, which shares ``model``'s parameters and train/eval mode: without DDP it is one
    compiled module (its training and evaluation graphs are cached side by side), under DDP evaluation
    compiles ``model`` itself (evaluation needs no gradient synchronisation).

    ``strategy="fsdp"`` shards ``model`` in place (``optimizer`` is pointed at the sharded parameters);
    there is no DDP wrapper then, and gradients are reduce-scattered after every micro-batch.
    """
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # Under DDP, callbacks that freeze or unfreeze layers mid-run need every parameter registered.
    trainable_changes = distributed.is_distributed() and distributed.changes_trainable(callbacks)
    forward_model = distributed.wrap_model(
        model,
        device,
        trainable_changes=trainable_changes,
        strategy=strategy,
        precision=precision,
        optimizer=optimizer,
    )
    ddp = forward_model if forward_model is not model else None
    eval_model = model
    if compile is not None:
        forward_model = compile_module(forward_model, compile)
        eval_model = forward_model if ddp is None else compile_module(model, compile)
    return forward_model, ddp, eval_model


def seed_rank(seed: int, rank: int) -> None:
    """Seed ``random``, numpy and torch with ``seed + rank``: one stream per rank, ``seed`` on rank 0.

    Dropout masks and augmentation drawn from the global generators then differ between ranks (each rank
    sees other examples), while a single process is seeded exactly as before. The data order does not use
    these generators: it is a function of ``(seed, epoch)``, sharded by rank.
    """
    checkpoints.seed_everything(seed + rank)


def restore_rank_rng(saved_rng: dict[str, Any], seed: int, rank: int, step: int) -> None:
    """Put back the RNG state of a checkpoint: rank 0's saved state on rank 0.

    Only rank 0 writes checkpoints, so the other ranks have no saved state of their own; each continues
    with a fresh stream of its own, seeded from ``(seed, rank, step)`` (reproducible, distinct per rank).
    """
    if rank == 0:
        checkpoints.restore_rng_state(saved_rng)
        return
    from cadence.data.loader import derive_seed

    checkpoints.seed_everything(derive_seed(seed, rank, step))


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
    from cadence.train.progress import ProgressBar  # the Trainer's own display, in this layer

    return [ProgressBar(mode="auto" if progress in ("auto", True) else progress)]
