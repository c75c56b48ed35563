"""A typed view of a run directory: one property per file of the layout, and readers for them.

The layout is the one :class:`cadence.tracking.run.RunWriter` writes (see :mod:`cadence.tracking.run`);
the checkpoint file names come from :mod:`cadence.tracking.checkpoint_files`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cadence.tracking.checkpoint_files import latest_checkpoint, list_checkpoints

__all__ = ["MissingRunFileError", "RunDir"]


class MissingRunFileError(FileNotFoundError):
    """A file of the run directory layout is not there; the message names the run and the file."""


@dataclass(frozen=True)
class RunDir:
    """The path of a run directory, with typed access to the files in it."""

    path: Path

    #: The file and folder names of the layout (the only place in cadence that spells them).
    META: ClassVar[str] = "meta.json"
    SUMMARY: ClassVar[str] = "summary.json"
    METRICS: ClassVar[str] = "metrics.jsonl"
    CONFIG: ClassVar[str] = "config.toml"
    LR_SELECTION: ClassVar[str] = "lr_selection.json"
    LR_SELECTION_PLOT: ClassVar[str] = "lr_selection.png"
    #: What cadence 0.1 wrote instead of ``lr_selection.json``; still read.
    LEGACY_LR_FINDER: ClassVar[str] = "lr_finder.json"
    TRAIN_CSV: ClassVar[str] = "train.csv"
    EVAL_CSV: ClassVar[str] = "eval.csv"
    TENSORBOARD: ClassVar[str] = "tensorboard"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    SNAPSHOTS: ClassVar[str] = "snapshots"
    SNAPSHOT_INDEX: ClassVar[str] = "snapshots.json"
    SNAPSHOT_PATTERN: ClassVar[str] = "snapshot-{k}.pt"
    SWA_MODEL: ClassVar[str] = "swa_model.pt"
    EMA_MODEL: ClassVar[str] = "ema_model.pt"
    #: Files a tracker (MLflow, W&B) uploads as artefacts of the run, and reads back by name.
    ARTEFACTS: ClassVar[tuple[str, ...]] = (CONFIG, SUMMARY, META)

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def meta_path(self) -> Path:
        return self.path / self.META

    @property
    def summary_path(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def lr_selection_path(self) -> Path:
        return self.path / self.LR_SELECTION

    @property
    def lr_selection_plot_path(self) -> Path:
        return self.path / self.LR_SELECTION_PLOT

    @property
    def legacy_lr_finder_path(self) -> Path:
        return self.path / self.LEGACY_LR_FINDER

    def csv_path(self, kind: str) -> Path:
        """``train.csv`` or ``eval.csv`` (written with ``csv=True``)."""
        names = {"train": self.TRAIN_CSV, "eval": self.EVAL_CSV}
        if kind not in names:
            raise ValueError(f"kind must be 'train' or 'eval', got {kind!r}")
        return self.path / names[kind]

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def snapshots_dir(self) -> Path:
        return self.path / self.SNAPSHOTS

    @property
    def snapshot_index_path(self) -> Path:
        return self.snapshots_dir / self.SNAPSHOT_INDEX

    def snapshot_path(self, k: int) -> Path:
        """The ``k``-th snapshot (1-based): ``snapshots/snapshot-{k}.pt``."""
        return self.snapshots_dir / self.SNAPSHOT_PATTERN.format(k=k)

    @property
    def swa_model_path(self) -> Path:
        return self.path / self.SWA_MODEL

    @property
    def ema_model_path(self) -> Path:
        return self.path / self.EMA_MODEL

    def averaged_model_paths(self) -> dict[str, Path]:
        """``{"swa": swa_model.pt, "ema": ema_model.pt}``, the averaged weights SWA and EMA write."""
        return {"swa": self.swa_model_path, "ema": self.ema_model_path}

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, with ``/`` (as recorded in ``summary.json``)."""
        return Path(path).relative_to(self.path).as_posix()

    def exists(self) -> bool:
        """Whether the directory exists."""
        return self.path.is_dir()

    def is_run(self) -> bool:
        """Whether the directory holds a run's ``meta.json``."""
        return self.meta_path.is_file()

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest step first."""
        return list_checkpoints(self.checkpoints_dir)

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint with the highest step, or ``None``."""
        return latest_checkpoint(self.checkpoints_dir)

    def snapshots(self) -> list[Path]:
        """The snapshot files ``snapshots/snapshot-{k}.pt``, in order of ``k``."""
        prefix, suffix = self.SNAPSHOT_PATTERN.split("{k}")
        found = []
        if self.snapshots_dir.is_dir():
            for path in self.snapshots_dir.glob(f"{prefix}*{suffix}"):
                middle = path.name[len(prefix) : len(path.name) - len(suffix)]
                if middle.isdigit():
                    found.append((int(middle), path))
        return [path for _, path in sorted(found)]

    def _require(self, path: Path) -> Path:
        if not path.is_file():
            raise MissingRunFileError(f"run directory {self.path} has no {path.name} (looked for {path})")
        return path

    def meta(self) -> dict[str, Any]:
        """``meta.json``."""
        return dict(json.loads(self._require(self.meta_path).read_text()))

    def summary(self) -> dict[str, Any]:
        """``summary.json``."""
        return dict(json.loads(self._require(self.summary_path).read_text()))

    def config(self) -> dict[str, Any]:
        """``config.toml``, parsed."""
        path = self._require(self.config_path)
        try:
            toml = importlib.import_module("tomllib")
        except ModuleNotFoundError:  # Python 3.10
            toml = importlib.import_module("tomli")
        with path.open("rb") as handle:
            return dict(toml.load(handle))

    def lr_selection(self) -> dict[str, Any]:
        """``lr_selection.json``: the LR race's or sweep's choice."""
        return dict(json.loads(self._require(self.lr_selection_path).read_text()))

    def snapshot_index(self) -> dict[str, Any]:
        """``snapshots/snapshots.json``: the snapshot steps, files and schedule."""
        return dict(json.loads(self._require(self.snapshot_index_path).read_text()))

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (only those of ``kind`` when given: "train" or "eval")."""
        lines = self._require(self.metrics_path).read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        return [record for record in records if kind is None or record.get("kind") == kind]

    @property
    def status(self) -> str | None:
        """The run's status from ``summary.json``, else ``meta.json``; ``None`` when neither exists."""
        for path in (self.summary_path, self.meta_path):
            if path.is_file():
                status = json.loads(path.read_text()).get("status")
                return None if status is None else str(status)
        return None
