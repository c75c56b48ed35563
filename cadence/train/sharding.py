"""What ``strategy="fsdp"`` changes for a fit: the options it refuses, and where its shards are written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError
from cadence.train import checkpoint as checkpoints
from cadence.train.callback import Callback

if TYPE_CHECKING:
    from cadence.train.checkpoint_schema import CheckpointRecord

__all__ = ["check_strategy_options", "load_shards", "save_shards", "shards_directory"]


def check_strategy_options(strategy: object, callbacks: Sequence[Callback], precision: str = "fp32") -> str:
    """``strategy`` checked (``"ddp"`` or ``"fsdp"``), and the options FSDP does not support yet refused.

    Refused with ``strategy="fsdp"``, whatever the world size (a run behaves the same under ``torchrun``
    and without it): callbacks that keep a full copy of the weights (``keeps_full_weights``; SWA, EMA and
    snapshots keep shards instead), and fp16 (its loss scaler does not handle sharded gradients; bf16
    needs none).
    """
    strategy = distributed.check_strategy(strategy)
    if strategy != "fsdp":
        return strategy
    if precision == "fp16":
        raise ConfigError(
            "precision='fp16' with strategy='fsdp' is not supported: use precision='bf16' (FSDP's mixed "
            "precision, no loss scaling) or strategy='ddp'"
        )
    for callback in callbacks:
        if getattr(callback, "keeps_full_weights", False):
            raise ConfigError(
                f"{type(callback).__name__} with strategy='fsdp' is not supported yet: it keeps a full copy "
                "of the weights, which FSDP shards; train with strategy='ddp' to average weights"
            )
    return strategy


def shards_directory(checkpoint: Path) -> Path:
    """The directory holding the shards of the checkpoint file ``checkpoint`` (``step-….shards``)."""
    return checkpoint.with_suffix(".shards")


def _callback_shards(callbacks: Sequence[Callback], model: nn.Module) -> dict[str, Any]:
    """Each callback's sharded state (:meth:`Callback.sharded_state_dict`), by ``"<index>-<class>"``."""
    found = {}
    for index, callback in enumerate(callbacks):
        tensors = callback.sharded_state_dict(model)
        if tensors:
            found[f"{index}-{type(callback).__name__}"] = tensors
    return found


def save_shards(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    directory: Path,
    step: int,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Every rank writes its shards of ``step`` (the model's, the optimizer's and the callbacks' sharded
    state, e.g. SWA's averaged shards) next to the checkpoint file; returns the payload's entry."""
    path = shards_directory(checkpoints.checkpoint_path(directory, step))
    files = distributed.save_sharded(model, optimizer, path, extra=_callback_shards(callbacks, model))
    return {"directory": path.name, "files": files}


def load_shards(
    saved: CheckpointRecord,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    checkpoint: Path | None,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Load the model, optimizer and callbacks' sharded state of a sharded checkpoint (every rank), or
    refuse a mismatch of strategy."""
    sharded = saved.sharded
    if sharded is None:
        if distributed.is_sharded(model):
            raise checkpoints.CheckpointError(
                f"resume: checkpoint {str(checkpoint)!r} was written with strategy='ddp' (full weights); "
                "resume it with strategy='ddp'"
            )
        model.load_state_dict(saved.model)
        optimizer.load_state_dict(saved.optimizer)
        return
    if checkpoint is None:
        raise checkpoints.CheckpointError(
            "resume: a sharded checkpoint needs its file's path to find its shards"
        )
    if not distributed.is_sharded(model):
        raise checkpoints.CheckpointError(
            f"resume: checkpoint {str(checkpoint)!r} is sharded (strategy='fsdp'); resume it with "
            "strategy='fsdp' on the same number of ranks"
        )
    wanted = _callback_shards(callbacks, model)
    try:
        loaded = distributed.load_sharded(
            model, optimizer, checkpoint.parent / sharded["directory"], sharded["files"], extra=wanted
        )
    except distributed.ShardedCheckpointError as error:
        raise checkpoints.CheckpointError(str(error)) from error
    for index, callback in enumerate(callbacks):
        key = f"{index}-{type(callback).__name__}"
        if key in loaded:
            callback.load_sharded_state_dict(loaded[key])
