"""Crash-safe checkpoint files and random-number-generator state.

Writing is atomic: the checkpoint goes to a temporary file in the same directory, is flushed and fsync'ed,
then ``os.replace``-d onto its final name (an atomic rename on POSIX and Windows). A crash at any moment
leaves either the old set of files or the new one, never a truncated checkpoint under a real name.

Loading uses ``torch.load(..., weights_only=True)``: only tensors and plain containers (dict, list, tuple,
str, numbers, None) are accepted, so a checkpoint file can never execute code. Everything we save is made of
those types, including the RNG states of torch, numpy and Python's ``random``.

Integrity: every checkpoint carries ``"format"`` (:data:`CHECKPOINT_FORMAT`) and ``"checksum"``, a
SHA-256 over the payload (every tensor's dtype, shape and bytes, and every other value, in order).
:func:`load_checkpoint` recomputes it, so bytes flipped inside a tensor are reported instead of loaded.
Format 1 files (written before checksums existed) load unverified; any other format is refused with a
message naming it. The keys each format requires, and their types, are in
:mod:`cadence.train.checkpoint_schema`; a loaded file missing one, or holding a value of another type, is
refused naming the key (``trainer.total_steps``), the type expected and the format.
A sharded checkpoint (``strategy="fsdp"``) is such a file plus a ``step-….shards``
directory written by ``torch.distributed.checkpoint``; the file holds the SHA-256 of each shard file, which
is checked too. The errors say which of these happened: the file is corrupt or not a checkpoint at all,
it holds objects that would run code, its checksum does not match, or its format is unknown.
:func:`select_checkpoint` picks the newest checkpoint that passes all of this and says why it skipped
newer ones.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadence.tracking.checkpoint_files import checkpoint_path, latest_checkpoint, list_checkpoints
from cadence.train.checkpoint_schema import (
    CHECKPOINT_FORMAT,
    READABLE_FORMATS,
    CheckpointError,
    CheckpointRecord,
    payload_format,
    validate_payload,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointRecord",
    "capture_rng_state",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "select_checkpoint",
]

# The format versions and what each requires: cadence.train.checkpoint_schema.
_READABLE_FORMATS = READABLE_FORMATS


def payload_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) over ``payload`` without its ``"checksum"`` entry: tensors by dtype, shape and bytes."""
    digest = hashlib.sha256()
    _hash_value(digest, {key: value for key, value in payload.items() if key != "checksum"})
    return digest.hexdigest()


def _hash_value(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}:".encode())
        if tensor.numel():
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _hash_value(digest, key)
            _hash_value(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _hash_value(digest, item)
    else:
        text = repr(value)
        digest.update(f"{type(value).__name__}{len(text)}:{text}".encode())


def save_checkpoint(payload: dict[str, Any], path: str | Path, *, integrity: bool = True) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + fsync + ``os.replace``).

    With ``integrity`` (the default) ``"format"`` (:data:`CHECKPOINT_FORMAT`) and ``"checksum"`` are set in
    what is written; ``integrity=False`` writes ``payload`` as it is (e.g. a bare state_dict). An
    ``OSError`` while writing (disk full, permissions) leaves any file already at ``path`` untouched and
    raises :class:`CheckpointError` naming the file and the cause.
    """
    path = Path(path)
    if integrity:
        payload = {**payload, "format": CHECKPOINT_FORMAT}
        payload["checksum"] = {"algorithm": "sha256", "digest": payload_checksum(payload)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _write_error(path, error) from error
        raise
    _fsync_directory(path.parent)
    return path


def _write_error(path: Path, error: OSError) -> CheckpointError:
    cause = f"the disk is full ({error})" if error.errno == errno.ENOSPC else str(error)
    previous = [found for found in list_checkpoints(path.parent) if found != path]
    kept = f"; the previous checkpoint {str(previous[-1])!r} is intact" if previous else ""
    return CheckpointError(f"could not write checkpoint {str(path)!r}: {cause}{kept}")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` onto the CPU and verify its format, checksum and keys.

    Raises :class:`CheckpointError` saying what failed: no such file; corrupt or not a checkpoint; objects
    that would run code; not a cadence Trainer checkpoint; an unknown format; a checksum mismatch; a key
    its format requires missing or of the wrong type (:data:`~cadence.train.checkpoint_schema.SCHEMAS`).
    :meth:`~cadence.train.checkpoint_schema.CheckpointRecord.from_payload` gives the typed record.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"resume: no checkpoint file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Unsupported global" in text or "GLOBAL " in text:
            raise CheckpointError(
                f"refusing to load checkpoint {str(path)!r}: it contains objects other than tensors and "
                "plain containers, which would run code when unpickled (loaded with weights_only=True): "
                f"{_weights_only_reason(text)}"
            ) from error
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a checkpoint (unreadable or truncated: "
            f"{_weights_only_reason(text)})"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a checkpoint (unreadable or truncated: {error})"
        ) from error
    if not isinstance(payload, dict) or "trainer" not in payload:
        raise CheckpointError(f"{str(path)!r} is not a cadence Trainer checkpoint (no 'trainer' entry)")
    version = payload_format(payload)
    if version not in _READABLE_FORMATS or isinstance(version, bool):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format {version!r}; this cadence reads formats "
            f"{', '.join(map(str, _READABLE_FORMATS))} (was it written by a newer cadence?)"
        )
    if version >= 2:
        stored = payload.get("checksum")
        if not isinstance(stored, dict) or not isinstance(stored.get("digest"), str):
            raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its checksum entry is missing")
        actual = payload_checksum(payload)
        if actual != stored["digest"]:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is corrupt: its SHA-256 checksum does not match its contents "
                f"(stored {stored['digest'][:12]}…, computed {actual[:12]}…)"
            )
    validate_payload(payload, path)  # every key its format requires, of the right type
    if isinstance(payload.get("sharded"), dict):
        _verify_shards(path, payload["sharded"])
    return payload


def _verify_shards(path: Path, sharded: dict[str, Any]) -> None:
    """The files of a sharded checkpoint (``strategy="fsdp"``) are exactly those it was written with.

    DCP's metadata file is a pickle: checking its SHA-256 here, against the digest in this verified file,
    means it is never read unless it is the file that was written.
    """
    from cadence.distributed.fsdp import file_digests

    directory = path.parent / str(sharded.get("directory"))
    if not directory.is_dir():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is incomplete: its shards {str(directory)!r} are missing"
        )
    found, stored = file_digests(directory), sharded.get("files", {})
    differing = sorted(set(found) ^ set(stored) | {name for name in found if found[name] != stored.get(name)})
    if differing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: the files of its shards differ from those written "
            f"({', '.join(differing[:6])}: missing, added or changed)"
        )


def _weights_only_reason(text: str) -> str:
    # torch's message is many lines of advice; the reason is the part after "WeightsUnpickler error:".
    reason = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    return lines[0].split(". Please use", 1)[0].rstrip(".") if lines else "unpickling failed"


def select_checkpoint(directory: str | Path) -> tuple[Path | None, dict[str, Any] | None, list[str]]:
    """The newest checkpoint in ``directory`` that loads and verifies: ``(path, payload, problems)``.

    ``problems`` has one line per newer checkpoint that failed (file and what failed); ``(None, None,
    problems)`` when none is good (``problems`` is empty when there is no checkpoint at all).
    """
    problems: list[str] = []
    for path in reversed(list_checkpoints(directory)):
        try:
            return path, load_checkpoint(path), problems
        except CheckpointError as error:
            problems.append(str(error))
    return None, None, problems


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (with their ``.shards`` directories, under FSDP);
    returns the deleted paths. ``keep < 1`` keeps every checkpoint.

    Also deletes orphaned ``step-….shards`` directories older than the newest checkpoint: shards whose
    checkpoint file was never written (the run died between the ranks' shard writes and rank 0's file) or
    was deleted by hand. Shards newer than the newest checkpoint are left alone, since they may be a save
    still in progress.
    """
    found = list_checkpoints(directory)
    removed = found[:-keep] if keep >= 1 else []
    for path in removed:
        with contextlib.suppress(OSError):
            path.unlink()
        shutil.rmtree(path.with_suffix(".shards"), ignore_errors=True)
    kept = found[len(removed) :]
    if kept:
        newest = _checkpoint_step(kept[-1])
        for shards in Path(directory).glob("step-*.shards"):
            step = _checkpoint_step(shards)
            orphaned = not shards.with_suffix(".pt").exists()
            if orphaned and step is not None and newest is not None and step < newest:
                shutil.rmtree(shards, ignore_errors=True)
    return removed


def _checkpoint_step(path: Path) -> int | None:
    """The step in a ``step-00001234.pt`` / ``.shards`` name, or ``None`` for any other name."""
    digits = path.stem.removeprefix("step-")
    return int(digits) if path.stem.startswith("step-") and digits.isdigit() else None


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
