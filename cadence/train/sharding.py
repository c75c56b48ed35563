"""What ``strategy="fsdp"`` changes for a fit: the options it refuses, and where its shards are written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError
from cadence.train import checkpoint as checkpoints
from cadence.train.callback import Callback

__all__ = ["check_strategy_options", "load_shards", "save_shards", "shards_directory"]


def check_strategy_options(
    strategy: object, schedules: Mapping[str, Any], callbacks: Sequence[Callback], precision: str = "fp32"
) -> str:
    """``strategy`` checked (``"ddp"`` or ``"fsdp"``), and the options FSDP does not support yet refused.

    Refused with ``strategy="fsdp"``, whatever the world size (a run behaves the same under ``torchrun``
    and without it): an ``"auto"`` learning rate (the LR finder and race train copies of the full model),
    callbacks that keep a full copy of the weights (SWA, EMA: ``keeps_full_weights``), and fp16 (its loss
    scaler does not handle sharded gradients; bf16 needs none).
    """
    strategy = distributed.check_strategy(strategy)
    if strategy != "fsdp":
        return strategy
    if precision == "fp16":
        raise ConfigError(
            "precision='fp16' with strategy='fsdp' is not supported: use precision='bf16' (FSDP's mixed "
            "precision, no loss scaling) or strategy='ddp'"
        )
    auto = [key for key, schedule in schedules.items() if getattr(schedule, "needs_lr_finder", False)]
    if auto:
        raise ConfigError(
            f"max_lr='auto' with strategy='fsdp' is not supported yet (schedule {auto[0]!r}): give max_lr a "
            "number, or find it with strategy='ddp' (cadence find-lr) and use that number"
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


def save_shards(
    model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path, step: int
) -> dict[str, Any]:
    """Every rank writes its shards of ``step`` next to the checkpoint file; returns the payload's entry."""
    path = shards_directory(checkpoints.checkpoint_path(directory, step))
    files = distributed.save_sharded(model, optimizer, path)
    return {"directory": path.name, "files": files}


def load_shards(
    saved: Mapping[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path | None
) -> None:
    """Load the model and optimizer of a sharded checkpoint (every rank), or refuse a mismatch of strategy."""
    sharded = saved.get("sharded")
    if sharded is None:
        if distributed.is_sharded(model):
            raise checkpoints.CheckpointError(
                f"resume: checkpoint {str(checkpoint)!r} was written with strategy='ddp' (full weights); "
                "resume it with strategy='ddp'"
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
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
    try:
        distributed.load_sharded(model, optimizer, checkpoint.parent / sharded["directory"], sharded["files"])
    except distributed.ShardedCheckpointError as error:
        raise checkpoints.CheckpointError(str(error)) from error
