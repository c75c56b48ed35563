"""Crash-safe checkpoint files and random-number-generator state.

Writing is atomic: the checkpoint goes to a temporary file in the same directory, is flushed and fsync'ed,
then ``os.replace``-d onto its final name (an atomic rename on POSIX and Windows). A crash at any moment
leaves either the old set of files or the new one, never a truncated checkpoint under a real name.

Loading uses ``torch.load(..., weights_only=True)``: only tensors and plain containers (dict, list, tuple,
str, numbers, None) are accepted, so a checkpoint file can never execute code. Everything we save is made of
those types, including the RNG states of torch, numpy and Python's ``random``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadence.errors import ConfigError

__all__ = [
    "CheckpointError",
    "capture_rng_state",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
]

_NAME = re.compile(r"^step-(\d{8,})\.pt$")


class CheckpointError(ConfigError):
    """A checkpoint is missing, unreadable, or contains objects that could run code when loaded."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """``directory / "step-00001234.pt"``: names sort in step order."""
    return Path(directory) / f"step-{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest step first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(match.group(1)), path) for path in directory.iterdir() if (match := _NAME.match(path.name))]
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` onto the CPU; refuse anything that could run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"resume: no checkpoint file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load checkpoint {str(path)!r}: it contains objects other than tensors and plain "
            f"containers, which could run code when unpickled (loaded with weights_only=True): {error}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable or truncated: {error}") from error
    if not isinstance(payload, dict) or "trainer" not in payload:
        raise CheckpointError(f"{str(path)!r} is not a cadence Trainer checkpoint (no 'trainer' entry)")
    return payload


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns the deleted paths."""
    if keep < 1:
        return []
    found = list_checkpoints(directory)
    removed = found[:-keep]
    for path in removed:
        with contextlib.suppress(OSError):
            path.unlink()
    return removed


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and every CUDA device), numpy's global generator and Python's ``random``.

    numpy's state becomes a tensor plus numbers and Python's a list of ints, so ``weights_only`` loads it.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) on Windows.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
