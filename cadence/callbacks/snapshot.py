"""Snapshot ensembles: save the weights at the end of every LR cycle (Huang et al. 2017).

"Snapshot Ensembles: Train 1, get M for free" trains with a cyclic cosine schedule and keeps the model at the
end of each cycle, where the LR is lowest and the model sits in a local minimum; averaging the snapshots'
predictions gives an ensemble for the cost of one training run. Here the schedule itself says where its cycles
end (``cycle_ends(total_steps)``, implemented by ``snapshot_cosine``, ``cosine_restarts`` and ``cyclic`` in
:mod:`cadence.schedules`), so the LR is updated per step, any number of steps works, and the snapshot steps
are a pure function of the schedule and ``total_steps`` — which is what makes resume exact.

Files: ``run_dir/snapshots/snapshot-{k}.pt`` (k = 1..M, the model's ``state_dict``, written atomically) and
``run_dir/snapshots/snapshots.json`` (steps, files, schedule); the count and steps also go to
``summary.json`` under ``extra.snapshot_ensemble``. Evaluate them with ``cadence ensemble RUN_DIR``
or :class:`cadence.ensembles.Ensemble`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cadence.ensembles import SnapshotSaver, snapshot_steps
from cadence.errors import ConfigError
from cadence.tracking.run import write_json
from cadence.tracking.run_dir import RunDir
from cadence.train.callback import Callback
from cadence.train.checkpoint import save_checkpoint
from cadence.train.state import TrainState

__all__ = ["SnapshotEnsemble", "atomic_save", "snapshot_path", "trainer_lr_schedule"]


def snapshot_path(run_dir: str | os.PathLike, k: int) -> Path:
    """``run_dir/snapshots/snapshot-{k}.pt``."""
    return RunDir(run_dir).snapshot_path(k)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: no reader sees a partial file.

    The same crash-safe write as the Trainer's checkpoints (:func:`cadence.train.checkpoint.save_checkpoint`).
    """
    save_checkpoint(obj, Path(path), integrity=False)


def trainer_lr_schedule(state: TrainState) -> Callable[[int], float] | None:
    """The run's LR schedule as the Trainer was given it (``state.schedules["lr"]``), ``None`` without one.

    Read from the state only: a callback never re-reads the run's files (``config.toml``); the config layer
    builds the schedule once and hands it to the Trainer.
    """
    schedules = getattr(state, "schedules", None)
    if isinstance(schedules, dict) and schedules.get("lr") is not None:
        return schedules["lr"]
    return None


class SnapshotEnsemble(Callback):
    """Save the model at the end of each cycle of the LR schedule, or at given steps.

    Args:
        num_snapshots: keep only the last ``num_snapshots`` cycle ends (the later, better-trained minima);
            ``None`` keeps all. Asking for more snapshots than the schedule has cycles is an error.
        at_steps: explicit 0-based steps ``s``; the snapshot is taken after update ``s`` (for schedules
            without ``cycle_ends``). Exclusive with a cyclic schedule's own ends only in that it wins.
        schedule: the LR schedule to ask for ``cycle_ends`` (the same one the Trainer applies). Needed in
            Python use; when left out, the schedule is taken from ``state.schedules["lr"]`` (the Trainer's),
            see :func:`trainer_lr_schedule`.

    A snapshot for end ``s`` is written in ``on_step_end`` when ``state.step == s + 1``. The taken steps are
    kept in :meth:`state_dict`; on resume the earlier files stay and the later snapshots are taken at the
    same steps as in an uninterrupted run. Only the main process (rank 0) writes.
    """

    def __init__(
        self,
        num_snapshots: int | None = None,
        at_steps: Sequence[int] | None = None,
        *,
        schedule: Callable[[int], float] | None = None,
    ) -> None:
        if num_snapshots is not None and (
            isinstance(num_snapshots, bool) or not isinstance(num_snapshots, int) or num_snapshots < 1
        ):
            raise ConfigError(
                f"SnapshotEnsemble num_snapshots must be a positive integer, got {num_snapshots=}"
            )
        if at_steps is not None:
            at_steps = [int(step) for step in at_steps]
            if not at_steps or any(step < 0 for step in at_steps) or len(set(at_steps)) != len(at_steps):
                raise ConfigError(
                    f"SnapshotEnsemble at_steps must be distinct steps >= 0, got at_steps={at_steps}"
                )
            at_steps = sorted(at_steps)
        self.num_snapshots = num_snapshots
        self.at_steps = at_steps
        self.schedule = schedule
        self.steps: list[int] = []
        self.taken: list[int] = []
        self.files: list[str] = []
        self.saver: SnapshotSaver | None = None

    def planned_steps(self, total_steps: int, schedule: Callable[[int], float] | None = None) -> list[int]:
        """The 0-based steps after whose update a snapshot is taken (``ensembles.snapshot_steps``)."""
        schedule = self.schedule if self.schedule is not None else schedule
        return snapshot_steps(schedule, total_steps, num_snapshots=self.num_snapshots, at_steps=self.at_steps)

    def on_fit_start(self, state: TrainState) -> None:
        schedule = self.schedule if self.schedule is not None or self.at_steps else trainer_lr_schedule(state)
        self.steps = self.planned_steps(state.total_steps, schedule)
        run_dir = getattr(state, "run_dir", None)
        writes = run_dir is not None and getattr(state, "is_main_process", True)
        directory = RunDir(run_dir).snapshots_dir if writes else None
        self.saver = SnapshotSaver(directory, self.steps, save=atomic_save)
        self.saver.taken = list(self.taken)

    def on_step_end(self, state: TrainState) -> None:
        finished = state.step - 1  # the update that just happened
        if self.saver is None or finished not in self.steps or finished in self.taken:
            return
        self.saver.save_if_due(state.model, finished)
        self.taken.append(finished)
        self.files.append(snapshot_path(".", self.steps.index(finished) + 1).name if state.run_dir else "")
        if state.run_dir is not None and state.is_main_process:
            self._write_index(Path(state.run_dir))

    def _write_index(self, run_dir: Path) -> None:
        index = self.summary()
        index["schedule"] = repr(self.schedule) if self.schedule is not None else None
        write_json(RunDir(run_dir).snapshot_index_path, index)

    def summary(self) -> dict[str, Any]:
        """``{"count", "steps", "planned_steps", "files"}`` for the run summary's ``extra``."""
        return {
            "count": len(self.taken),
            "steps": list(self.taken),
            "planned_steps": list(self.steps),
            "files": [f"{RunDir.SNAPSHOTS}/{name}" for name in self.files if name],
        }

    def on_fit_end(self, state: TrainState) -> None:
        if state.run_dir is not None and state.is_main_process:
            if self.taken:
                self._write_index(Path(state.run_dir))
            state.summary_extra["snapshot_ensemble"] = self.summary()

    def state_dict(self) -> dict[str, Any]:
        return {"taken": list(self.taken), "files": list(self.files)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.taken = [int(step) for step in state_dict.get("taken", [])]
        self.files = [str(name) for name in state_dict.get("files", [])]
