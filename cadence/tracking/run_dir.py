"""A typed view of a run directory: one property per file of the layout, and readers for them.

The layout is the one :class:`cadence.tracking.run.RunWriter` writes (see :mod:`cadence.tracking.run`);
the checkpoint file names come from :mod:`cadence.tracking.checkpoint_files`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.tracking.checkpoint_files import latest_checkpoint, list_checkpoints

__all__ = ["MissingRunFileError", "RunDir"]


class MissingRunFileError(FileNotFoundError):
    """A file of the run directory layout is not there; the message names the run and the file."""


@dataclass(frozen=True)
class RunDir:
    """The path of a run directory, with typed access to the files in it."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def lr_selection_path(self) -> Path:
        return self.path / "lr_selection.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

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
