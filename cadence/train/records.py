"""What the Trainer writes to its run directory: the ``meta.json`` fields, metric records and the summary.

The files themselves are written by :class:`cadence.tracking.run.RunWriter`; the layout is described there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.tracking.run import RunWriter, git_revision, read_json
from cadence.tracking.run_dir import RunDir
from cadence.train.callback import Callback
from cadence.train.checkpoint_schema import CheckpointRecord
from cadence.train.state import TrainState

__all__ = [
    "changed_fingerprint_keys",
    "eval_record",
    "fit_summary",
    "open_run",
    "run_meta",
    "train_record",
    "trainer_fingerprint",
    "update_best",
]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def run_meta(
    state: TrainState,
    *,
    name: str | None,
    schedules: Mapping[str, Any],
    batches_per_epoch: int,
    precision: str,
    grad_clip: float | None,
    label_smoothing: float,
    callbacks: Sequence[Callback],
    with_git: bool,
    fingerprint: Mapping[str, Any] | None = None,
    backend: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's description for ``meta.json``; ``finished_at`` and ``wall_time`` are filled in at the end."""
    return {
        "name": name,
        "device": str(state.device),
        "seed": state.seed,
        "world_size": state.world_size,
        # Only a process that writes the run directory pays for the git subprocess.
        "git_revision": git_revision() if with_git else None,
        "schedules": {key: repr(value) for key, value in schedules.items()},
        "total_steps": state.total_steps,
        "steps_per_epoch": state.steps_per_epoch,
        "batches_per_epoch": batches_per_epoch,
        "accumulation_steps": state.accumulation_steps,
        "precision": precision,
        "grad_clip": grad_clip,
        "label_smoothing": label_smoothing,
        "callbacks": [type(callback).__name__ for callback in callbacks],
        # torch.compile's arguments (false: eager), TF32, cuDNN autotuning and whether they were applied
        "backend": dict(backend) if backend is not None else None,
        "fingerprint": dict(fingerprint) if fingerprint is not None else None,
        "finished_at": None,
        "wall_time": None,
    }


def trainer_fingerprint(trainer: Any, state: TrainState) -> dict[str, Any]:
    """The fingerprint of a run from the Trainer's own settings (runs not made from a config).

    It holds the seed, length, schedules, optimizer class and hyperparameters (as given, before any step),
    model class and size, precision, clipping, accumulation, label smoothing, callbacks, the config when one
    is given, and the training data's type and length.
    """
    from cadence.tracking.fingerprint import make_fingerprint

    optimizer = trainer.optimizer
    groups = [
        {key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups
    ]
    values = {
        "seed": trainer.seed,
        "total_steps": state.total_steps,
        # Without memory addresses (``<function f at 0x...>``), which differ between processes.
        "schedules": {key: _ADDRESS.sub("", repr(value)) for key, value in trainer.schedules.items()},
        "optimizer": {"class": type(optimizer).__name__, "groups": groups},
        "model": {
            "class": type(trainer.model).__name__,
            "parameters": sum(parameter.numel() for parameter in trainer.model.parameters()),
        },
        "precision": trainer.precision_mode,
        "grad_clip": trainer.grad_clip,
        "accumulation_steps": trainer.accumulation_steps,
        "label_smoothing": trainer.label_smoothing,
        "callbacks": [type(callback).__name__ for callback in trainer.callbacks],
        "config": trainer.config or {},
        "data": {"type": type(trainer.train_data).__name__, "batches": state.steps_per_epoch},
    }
    return make_fingerprint(values)


def changed_fingerprint_keys(run_dir: Path | None, fingerprint: Mapping[str, Any]) -> list[str]:
    """Keys of ``fingerprint`` that differ from the one recorded in ``run_dir/meta.json`` (none recorded:
    nothing to compare, an empty list)."""
    from cadence.tracking.fingerprint import fingerprint_differences, recorded_fingerprint

    recorded = recorded_fingerprint(run_dir) if run_dir is not None else None
    return fingerprint_differences(recorded, fingerprint) if recorded is not None else []


def open_run(
    state: TrainState,
    saved: CheckpointRecord | None,
    *,
    config: Mapping[str, Any] | None,
    csv: bool,
    loggers: Sequence[Any] = (),
    name: str | None,
    schedules: Mapping[str, Any],
    batches_per_epoch: int,
    precision: str,
    grad_clip: float | None,
    label_smoothing: float,
    callbacks: Sequence[Callback],
    fingerprint: Mapping[str, Any] | None = None,
    backend: Mapping[str, Any] | None = None,
) -> RunWriter:
    """The run directory's writer, started; a resume (``saved``) keeps the first start time and metrics,
    and the trackers continue their runs. Only the main process passes metrics to the ``loggers``."""
    run_dir = state.run_dir
    writer = RunWriter(
        run_dir if run_dir is not None else Path("."),
        enabled=run_dir is not None and state.is_main_process,
        csv=csv,
        loggers=loggers if state.is_main_process else (),
    )
    meta = run_meta(
        state,
        name=name,
        schedules=schedules,
        batches_per_epoch=batches_per_epoch,
        precision=precision,
        grad_clip=grad_clip,
        label_smoothing=label_smoothing,
        callbacks=callbacks,
        with_git=writer.enabled,
        fingerprint=fingerprint,
        backend=backend,
    )
    if saved is not None and writer.enabled and run_dir is not None and RunDir(run_dir).is_run():
        before = read_json(RunDir(run_dir).meta_path)
        meta["started_at"] = before.get("started_at")
        meta["trackers"] = before.get("trackers") or {}
    keep = saved.trainer.metrics_lines if saved is not None else None
    writer.start(meta, config, keep_lines=keep)
    return writer


def train_record(state: TrainState, *, epoch: float, lr: float, loss: float, skipped: bool) -> dict[str, Any]:
    """The ``metrics.jsonl`` record of the step just taken; its time is ``state.wall_time``."""
    record: dict[str, Any] = {"kind": "train", "step": state.step, "epoch": epoch, "lr": lr}
    if "momentum" in state.hyperparams:
        record["momentum"] = state.hyperparams["momentum"]
    groups = state.optimizer.param_groups
    if len(groups) > 1:  # what each param group used: lr × lr_scale × the techniques' modifiers
        record["lr_groups"] = [float(group["lr"]) for group in groups]
    record["loss"] = loss
    if skipped:
        record["skipped"] = True
    record["time"] = state.wall_time
    return record


def eval_record(state: TrainState, *, epoch: float, time: float) -> dict[str, Any]:
    """The ``metrics.jsonl`` record of the evaluation whose results are in ``state.metrics``."""
    return {"kind": "eval", "step": state.step, "epoch": epoch, "time": time, **state.metrics}


def update_best(best: dict[str, float], metrics: Mapping[str, float]) -> None:
    """Keep, in place, the lowest value of each loss and the highest of every other metric."""
    for key, value in metrics.items():
        better = min if "loss" in key else max
        best[key] = value if key not in best else better(best[key], value)


def fit_summary(state: TrainState, status: str, best: Mapping[str, float]) -> dict[str, Any]:
    """``summary.json`` at the end of ``fit``; callbacks may add to its ``"extra"`` in ``on_fit_end``."""
    summary: dict[str, Any] = {
        "status": status,
        "steps": state.step,
        "wall_time": state.wall_time,
        "final": {"loss": state.last_loss, **state.metrics},
        "best": dict(best),
        "skipped_steps": state.skipped_steps,
        "extra": {},
    }
    if status in ("stopped", "stalled") and state.stop_reason:
        summary["extra"]["stop_reason"] = state.stop_reason
    return summary
