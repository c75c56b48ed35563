"""What a Trainer checkpoint holds, and how a run continues from one exactly where it stopped.

The file format itself (atomic writes, ``weights_only`` loading, RNG state) lives in
:mod:`cadence.train.checkpoint`; this module decides what goes into the payload and puts it back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.data.batches import epoch_batches
from cadence.errors import ConfigError
from cadence.hyperparams import ScheduleOrValue
from cadence.precision import Precision
from cadence.schedules.base import needs_lr_finder
from cadence.tracking.run_dir import RunDir
from cadence.train import checkpoint as checkpoints
from cadence.train.callback import Callback
from cadence.train.checkpoint_schema import CallbackRecord, CheckpointRecord, TrainerRecord
from cadence.train.state import TrainState

__all__ = [
    "checkpoint_payload",
    "epoch_iterator",
    "find_checkpoint",
    "restore_checkpoint",
    "restore_schedules",
    "schedule_configs",
    "write_checkpoint",
]

#: Counters copied one to one between :class:`TrainState` and the checkpoint's ``trainer`` record
#: (``loss_start`` and ``loss_average`` were added later: an older file gives NaN, so stall detection
#: restarts; see :mod:`cadence.train.checkpoint_schema`).
_COUNTERS = (
    "step",
    "epoch",
    "batch_index",
    "skipped_steps",
    "wall_time",
    "last_loss",
    "loss_start",
    "loss_average",
)


def find_checkpoint(
    resume: str | Path | None, run_dir: Path | None
) -> tuple[CheckpointRecord | None, Path | None, list[str]]:
    """The checkpoint ``fit(resume=...)`` asks for: ``(record, path, problems)``.

    ``None`` gives ``(None, None, [])``; ``"auto"`` is ``"latest"`` in a process that ``torchrun
    --max-restarts`` restarted (``TORCHELASTIC_RESTART_COUNT > 0``) and ``None`` otherwise. ``"latest"``
    takes the newest checkpoint in ``run_dir/checkpoints`` that loads and passes its checksum; ``problems``
    names each newer one skipped and what failed. With no checkpoint at all it gives ``(None, None, [])``
    (a fresh start); when every checkpoint fails it raises :class:`~cadence.train.checkpoint.CheckpointError`
    listing them. A path loads that file, no fallback.
    """
    if resume == "auto":  # a fresh start, unless torchrun restarted this process after a failure
        resume = "latest" if distributed.restarted_by_torchrun() and run_dir is not None else None
    if resume is None:
        return None, None, []
    if resume == "latest":
        if run_dir is None:
            raise ConfigError("fit(resume='latest') needs run_dir, where the checkpoints are")
        # Rank 0 chooses (the newest checkpoint that passes its checksum) and every rank loads that file:
        # ranks never resume from different steps. A failure is broadcast too, so no rank waits forever.
        path, payload, problems, failure = None, None, [], None
        if distributed.get_rank() == 0:
            directory = RunDir(run_dir).checkpoints_dir
            path, payload, problems = checkpoints.select_checkpoint(directory)
            if path is None and problems:
                failure = f"resume: no usable checkpoint in {str(directory)!r}: " + "; ".join(problems)
        chosen, problems, failure = distributed.broadcast_object(
            (None if path is None else str(path), problems, failure)
        )
        if failure is not None:
            raise checkpoints.CheckpointError(failure)
        if chosen is None:
            return None, None, problems
        if payload is None:  # ranks other than 0 load the file rank 0 chose
            payload = checkpoints.load_checkpoint(chosen)
        return CheckpointRecord.from_payload(payload, chosen), Path(chosen), problems
    return CheckpointRecord.from_payload(checkpoints.load_checkpoint(resume), resume), Path(resume), []


def checkpoint_payload(
    state: TrainState,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    callbacks: Sequence[Callback],
    best: Mapping[str, float],
    metrics_lines: int,
    schedules: dict[str, Any],
    epoch_rng: torch.Tensor | None,
    sharded: dict[str, Any] | None = None,
) -> CheckpointRecord:
    """Everything a resume needs; ``epoch_rng`` is torch's generator state at the start of the epoch.

    ``sharded`` (``strategy="fsdp"``): the shards' directory and file digests, which stand in for the
    model and optimizer state (:func:`cadence.train.sharding.save_shards`).
    """
    weights: dict[str, Any] = (
        {"sharded": sharded}
        if sharded is not None
        else {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    )
    return CheckpointRecord(
        **weights,
        precision=precision.state_dict(),
        callbacks=tuple(
            CallbackRecord(type(callback).__name__, callback.state_dict()) for callback in callbacks
        ),
        trainer=TrainerRecord(
            **{field: getattr(state, field) for field in _COUNTERS},
            metrics=dict(state.metrics),
            best=dict(best),
            total_steps=state.total_steps,
            world_size=state.world_size,
            metrics_lines=metrics_lines,
            schedules=schedules,
        ),
        rng=checkpoints.capture_rng_state(),
        epoch_rng=epoch_rng,
    )


def write_checkpoint(record: CheckpointRecord, directory: Path, step: int, keep: int) -> None:
    """Save ``record`` as the checkpoint of ``step`` in ``directory``, keeping the newest ``keep``."""
    checkpoints.save_checkpoint(record.to_payload(), checkpoints.checkpoint_path(directory, step))
    checkpoints.prune_checkpoints(directory, keep)


def schedule_configs(schedules: Mapping[str, ScheduleOrValue]) -> dict[str, Any]:
    """Config forms of schedules the LR finder resolved, so a resume does not run the finder again."""
    from cadence.schedules import to_config

    configs = {}
    for key, value in schedules.items():
        # A schedule without a config form is left out: the finder's record is reused on resume.
        with contextlib.suppress(Exception):
            configs[key] = to_config(value)
    return configs


def restore_checkpoint(
    saved: CheckpointRecord,
    state: TrainState,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    callbacks: Sequence[Callback],
    path: Path | None = None,
) -> dict[str, float]:
    """Check ``saved`` fits this run, load it into the objects and ``state``; returns the best metrics.

    ``path`` is the checkpoint file's (a sharded checkpoint's shards lie next to it)."""
    trainer = saved.trainer
    distributed.check_world_size(trainer.world_size, state.world_size)
    if trainer.total_steps != state.total_steps:
        raise ConfigError(
            f"resume: the checkpoint is from a run of total_steps={trainer.total_steps} but this run "
            f"has total_steps={state.total_steps}; resume with the same epochs/total_steps and data"
        )
    saved_names = [entry.name for entry in saved.callbacks]
    names = [type(callback).__name__ for callback in callbacks]
    if saved_names != names:
        raise checkpoints.CheckpointError(
            f"resume: the checkpoint has callbacks {saved_names} but "
            f"this run has {names}; pass the same callbacks in the same order"
        )
    from cadence.train.sharding import load_shards

    load_shards(saved, model, optimizer, path, callbacks)
    precision.load_state_dict(saved.precision)
    for callback, entry in zip(callbacks, saved.callbacks):
        callback.load_state_dict(entry.state)
    for field in _COUNTERS:
        setattr(state, field, getattr(trainer, field))
    state.metrics = dict(trainer.metrics)
    return dict(trainer.best)


def restore_schedules(schedules: dict[str, ScheduleOrValue], configs: Mapping[str, Any]) -> None:
    """Replace, in place, schedules still waiting for the LR finder with the checkpoint's resolved ones."""
    from cadence.schedules import from_config

    for key, config in configs.items():
        if needs_lr_finder(schedules.get(key)):
            schedules[key] = from_config(config)


def epoch_iterator(
    data: Any, epoch: int, batch_index: int, resume_rng: torch.Tensor | None
) -> tuple[Iterator[Any], torch.Tensor]:
    """The batches of ``epoch`` from ``batch_index`` on, and torch's generator state at the epoch's start.

    Mid-epoch resume (``resume_rng`` given): a DataLoader shuffles from torch's global generator, so its
    state at the epoch's start is replayed while the consumed batches are skipped, then the checkpoint's
    state is put back for the rest of the run.
    """
    if batch_index and resume_rng is not None:
        current = torch.get_rng_state()
        torch.set_rng_state(resume_rng)
        iterator = epoch_batches(data, epoch, batch_index)
        torch.set_rng_state(current)
        return iterator, resume_rng
    epoch_rng = torch.get_rng_state()
    return epoch_batches(data, epoch, batch_index), epoch_rng
