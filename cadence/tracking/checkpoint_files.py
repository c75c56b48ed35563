"""Where a run directory keeps its checkpoints: the file names, in step order.

The layout of a run directory is the run records' business (:mod:`cadence.tracking`), so the run-directory
policy (:func:`cadence.tracking.fingerprint.check_run_dir`) can see whether a run has a checkpoint without
loading the loop; :mod:`cadence.train.checkpoint` writes and reads the files and re-exports these names.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CHECKPOINT_NAME", "checkpoint_path", "latest_checkpoint", "list_checkpoints"]

#: The name of a checkpoint file: ``step-`` and the step, zero-padded to at least 8 digits, ``.pt``.
CHECKPOINT_NAME = re.compile(r"^step-(\d{8,})\.pt$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """``directory / "step-00001234.pt"``: names sort in step order."""
    return Path(directory) / f"step-{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest step first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in directory.iterdir()
        if (match := CHECKPOINT_NAME.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None
