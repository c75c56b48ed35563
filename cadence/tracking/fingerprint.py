"""Run fingerprints: what determines a run's result, recorded in ``meta.json`` and checked before reuse.

A fingerprint is a flat mapping of dotted keys to JSON values (``train.seed``, ``optimizer.weight_decay``,
``data_files.<name>`` = the SHA-256 of each data file read, ``cadence_version``, ...) plus a ``digest`` over
them. Two runs with the same digest were asked to compute the same thing. :func:`fingerprint_differences`
lists the keys that differ, :func:`check_run_dir` is the run-directory policy of ``cadence train`` (no
silent overwrite, no resume of a missing run or of a run with other settings), and :func:`stale_reason`
tells ``cadence compare`` whether a finished run still matches its config.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError
from cadence.tracking.run_dir import RunDir

__all__ = [
    "FINGERPRINT_VERSION",
    "check_run_dir",
    "describe_differences",
    "fingerprint_differences",
    "flatten",
    "make_fingerprint",
    "recorded_fingerprint",
    "stale_reason",
]

FINGERPRINT_VERSION = 1
_DATA_PREFIX = "data_files."

#: Keys added to fingerprints by later versions, with the value that does what older versions did. A run
#: recorded before a key existed matches a fingerprint that has the key at this value, so upgrading cadence
#: neither makes finished runs stale (``cadence compare`` would train them again) nor refuses a resume.
ADDED_KEYS: dict[str, Any] = {"train.tf32": False, "train.cudnn_benchmark": False}


def _plain(value: Any) -> Any:
    # Tuples become lists and unknown objects their repr, so a value compares equal after a JSON round trip.
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"train": {"seed": 0}}`` -> ``{"train.seed": 0}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = _plain(value)
    return flat


def make_fingerprint(
    values: Mapping[str, Any],
    *,
    overrides: Sequence[str] = (),
    data_files: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The fingerprint of a run described by ``values`` (nested or flat) and the data files it read.

    ``data_files`` entries are ``{"name", "path", "sha256", "bytes"}`` (see
    :func:`cadence.data.files.describe_files`); each becomes the value ``data_files.<name>`` = its SHA-256.
    ``overrides`` (the ``--set`` values) are recorded; their effect is already in ``values``.
    """
    from cadence import __version__

    flat = flatten(values)
    flat["cadence_version"] = __version__
    files = [dict(entry) for entry in data_files]
    for entry in files:
        flat[f"{_DATA_PREFIX}{entry['name']}"] = entry["sha256"]
    flat = dict(sorted(flat.items()))
    text = json.dumps(flat, sort_keys=True, allow_nan=True)
    return {
        "version": FINGERPRINT_VERSION,
        "digest": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "values": flat,
        "overrides": list(overrides),
        "data_files": files,
    }


def fingerprint_differences(
    old: Mapping[str, Any], new: Mapping[str, Any], *, data: bool = True
) -> list[str]:
    """Sorted keys whose values differ between two fingerprints (``data=False``: ignore data files)."""
    before, after = dict(old.get("values", {})), dict(new.get("values", {}))
    keys = sorted(set(before) | set(after))
    if not data:
        keys = [key for key in keys if not key.startswith(_DATA_PREFIX)]
    for key, value in ADDED_KEYS.items():
        if (key in before) != (key in after):
            before.setdefault(key, value)
            after.setdefault(key, value)
    return [key for key in keys if before.get(key, "<unset>") != after.get(key, "<unset>")]


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``"train.seed: 0 -> 1, optimizer.weight_decay: 0.0 -> 0.0005"`` (at most 8 keys, then a count)."""
    before, after = old.get("values", {}), new.get("values", {})

    def show(values: Mapping[str, Any], key: str) -> str:
        return json.dumps(values[key]) if key in values else "unset"

    shown = [f"{key}: {show(before, key)} -> {show(after, key)}" for key in keys[:8]]
    if len(keys) > 8:
        shown.append(f"and {len(keys) - 8} more")
    return ", ".join(shown)


def recorded_fingerprint(run_dir: str | Path) -> dict[str, Any] | None:
    """The fingerprint in ``run_dir/meta.json``, or ``None`` (no run there, or one from an older cadence)."""
    try:
        meta = json.loads(RunDir(run_dir).meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fingerprint = meta.get("fingerprint") if isinstance(meta, dict) else None
    return fingerprint if isinstance(fingerprint, dict) and "values" in fingerprint else None


def _is_run(run_dir: Path) -> bool:
    return RunDir(run_dir).is_run() or RunDir(run_dir).checkpoints_dir.is_dir()


def check_run_dir(
    run_dir: str | Path,
    fingerprint: Mapping[str, Any] | None,
    *,
    resume: bool,
    overwrite: bool = False,
    allow_changes: bool = False,
) -> None:
    """The run-directory policy of ``cadence train``; raises :class:`ConfigError` (exit code 2) when refused.

    - a new run (no ``resume``) goes only into a missing or empty directory; ``overwrite`` first deletes a
      previous run there (its checkpoints and records), and never touches a directory that holds no run;
    - ``resume`` needs a run directory with a checkpoint, and a recorded fingerprint equal to
      ``fingerprint`` (the differing keys are listed) unless ``allow_changes`` (or ``fingerprint`` is
      ``None``: only the directory is checked).
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: continue the run or replace it")
    if resume:
        if not run_dir.is_dir():
            raise ConfigError(
                f"--resume: no run directory {str(run_dir)!r} (check the path; leave out --resume to start a "
                "new run)"
            )
        from cadence.tracking.checkpoint_files import list_checkpoints

        if not list_checkpoints(RunDir(run_dir).checkpoints_dir):
            raise ConfigError(
                f"--resume: {str(run_dir)!r} holds no checkpoint to continue from; use --overwrite to start "
                "the run afresh"
            )
        recorded = recorded_fingerprint(run_dir)
        if allow_changes or fingerprint is None:
            return
        if recorded is None:
            raise ConfigError(
                f"--resume: the run in {str(run_dir)!r} has no fingerprint (recorded by an older cadence), "
                "so its settings cannot be checked; pass --allow-changes to resume it anyway"
            )
        keys = fingerprint_differences(recorded, fingerprint)
        if keys:
            raise ConfigError(
                f"--resume: the settings differ from the run in {str(run_dir)!r}: "
                f"{describe_differences(recorded, fingerprint, keys)}; resume with the same config and --set "
                "values, or pass --allow-changes to continue with the new ones"
            )
        return
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if not overwrite:
        raise ConfigError(
            f"run directory {str(run_dir)!r} is not empty; use --resume to continue the run in it or "
            "--overwrite to replace it"
        )
    if not _is_run(run_dir):
        raise ConfigError(
            f"--overwrite: {str(run_dir)!r} holds files but no cadence run (no meta.json or checkpoints/); "
            "refusing to delete them, choose another --run-dir"
        )
    shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)


def stale_reason(run_dir: str | Path, expected: Mapping[str, Any] | None) -> str | None:
    """Why the finished run in ``run_dir`` no longer matches ``expected`` (a fingerprint without data
    files, from its config), or ``None`` when it still matches or cannot be checked (no fingerprint
    recorded, or no ``expected``).

    Data files are checked by hashing the files the run recorded again: a file that changed or is gone
    makes the run stale.
    """
    recorded = recorded_fingerprint(run_dir)
    if recorded is None or expected is None:
        return None
    keys = fingerprint_differences(recorded, expected, data=False)
    if keys:
        return f"its fingerprint changed ({describe_differences(recorded, expected, keys)})"
    from cadence.data.files import file_sha256, folder_sha256

    for entry in recorded.get("data_files", []):
        path = Path(str(entry.get("path", "")))
        if entry.get("kind") == "folder":
            if not path.is_dir():
                return f"its data folder {str(path)!r} is gone"
            if folder_sha256(path, entry.get("suffixes", []))[0] != entry.get("sha256"):
                return f"its data folder {str(path)!r} changed (SHA-256 over its files differs)"
            continue
        if not path.is_file():
            return f"its data file {str(path)!r} is gone"
        if file_sha256(path) != entry.get("sha256"):
            return f"its data file {str(path)!r} changed (SHA-256 differs)"
    return None
