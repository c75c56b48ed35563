"""Reading run directories back: one :class:`RunRecord` per directory the Trainer wrote.

A run directory holds ``meta.json``, ``metrics.jsonl`` and, once training ended, ``summary.json``.
:func:`find_run_dirs` expands paths to the run directories under them and :func:`load_run` reads one. Files
cut short by a crash read as missing, and a killed run's last, partial metrics line is skipped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError
from cadence.tracking.run_dir import RunDir
from cadence.tracking.stats import higher_is_better

__all__ = ["USABLE_STATUSES", "RunRecord", "find_run_dirs", "load_run"]

#: Runs with one of these statuses enter the statistics; every other status is listed but left out.
#: "stopped" is a run a callback ended on purpose (early stopping): its metrics are real. "stalled" ran to the
#: end without learning: its (chance) metrics are real too, and leaving them out would hide the failure.
USABLE_STATUSES: tuple[str, ...] = ("completed", "stopped", "stalled")

_SEED_DIR = re.compile(r"^seed[-_]?(\d+)$")


@dataclass
class RunRecord:
    """Everything compare needs from one run directory."""

    path: Path
    name: str
    seed: int | None
    status: str
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    lr_finder: dict[str, Any] | None = None
    #: ``lr_selection.json``: how an "auto" max_lr was chosen (the sweep, every race candidate, the cost).
    lr_selection: dict[str, Any] | None = None

    @property
    def usable(self) -> bool:
        """True when the run finished normally and has a summary."""
        return self.status in USABLE_STATUSES and self.summary is not None

    @property
    def steps(self) -> int | None:
        if self.summary and self.summary.get("steps") is not None:
            return int(self.summary["steps"])
        if self.train:
            return int(self.train[-1]["step"])
        return None

    @property
    def wall_time(self) -> float | None:
        for source in (self.summary or {}, self.meta):
            if source.get("wall_time") is not None:
                return float(source["wall_time"])
        if self.train:
            return float(self.train[-1].get("time", math.nan))
        return None

    def final(self) -> dict[str, float]:
        """Final metrics: ``summary["final"]``, else the last evaluation."""
        if self.summary and self.summary.get("final"):
            return {key: float(value) for key, value in self.summary["final"].items() if _is_number(value)}
        if self.evals:
            return _metric_values(self.evals[-1])
        return {}

    def best(self) -> dict[str, float]:
        """Best metrics: ``summary["best"]``, else the best over evaluations (direction from the name)."""
        if self.summary and self.summary.get("best"):
            return {key: float(value) for key, value in self.summary["best"].items() if _is_number(value)}
        best: dict[str, float] = {}
        for record in self.evals:
            for key, value in _metric_values(record).items():
                if key not in best:
                    best[key] = value
                elif higher_is_better(key):
                    best[key] = max(best[key], value)
                else:
                    best[key] = min(best[key], value)
        return best


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_values(record: dict[str, Any]) -> dict[str, float]:
    skip = {"kind", "step", "epoch", "time"}
    return {key: float(value) for key, value in record.items() if key not in skip and _is_number(value)}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a file cut short by a crash reads as missing
    return value if isinstance(value, dict) else None


def _read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    if not path.exists():
        return train, evals
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run may be cut short
            if not isinstance(record, dict) or "step" not in record:
                continue
            if record.get("kind") == "eval":
                evals.append(record)
            elif record.get("kind", "train") == "train":
                train.append(record)
    return train, evals


def _default_name(path: Path, meta: dict[str, Any]) -> str:
    if _SEED_DIR.match(path.name):
        return path.parent.name
    if meta.get("name"):
        return str(meta["name"])
    return path.name


def load_run(path: str | Path, name: str | None = None) -> RunRecord:
    """Read one run directory.

    The group name is ``name`` when given, else the parent directory's name for run directories called
    ``seed-N`` (the layout ``cadence compare`` writes), else ``meta["name"]``, else the directory's name.
    The status is the summary's, else the metadata's ("running" without a summary reads as "incomplete"),
    else "missing" when the directory holds no run at all.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory not found: {path}")
    run = RunDir(path)
    meta = _read_json(run.meta_path) or {}
    summary = _read_json(run.summary_path)
    train, evals = _read_metrics(run.metrics_path)
    if summary is not None and summary.get("status"):
        status = str(summary["status"])
    elif meta.get("status"):
        status = str(meta["status"])
        if status in ("running", *USABLE_STATUSES):
            status = "incomplete"  # no summary: the process ended before fit finished
    else:
        status = "missing"
    seed = meta.get("seed")
    if seed is None:
        match = _SEED_DIR.match(path.name)
        seed = int(match.group(1)) if match else None
    return RunRecord(
        path=path,
        name=name or _default_name(path, meta),
        seed=int(seed) if seed is not None else None,
        status=status,
        error=meta.get("error") or (summary or {}).get("error"),
        meta=meta,
        summary=summary,
        train=train,
        evals=evals,
        lr_finder=_finder_record(path),
        lr_selection=_read_json(run.lr_selection_path),
    )


def _finder_record(path: Path) -> dict[str, Any] | None:
    """The LR range test of a run: ``lr_finder.json``, or the sweep inside ``lr_selection.json`` with the
    value the run used."""
    run = RunDir(path)
    record = _read_json(run.legacy_lr_finder_path)
    if record is not None:
        return record
    selection = _read_json(run.lr_selection_path)
    if selection is None or not isinstance(selection.get("sweep"), dict):
        return None
    return {**selection["sweep"], "value": selection.get("value")}


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path to the run directories under it (a directory holding ``meta.json``).

    A path that is a run directory is kept as is; otherwise it is searched recursively, so ``--runs out``
    picks up ``out/runs/<config>/seed-<s>``.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"run directory not found: {path}")
        run = RunDir(path)
        if run.meta_path.exists() or run.summary_path.exists():
            found.append(path)
            continue
        below = sorted({meta.parent for meta in path.rglob(RunDir.META)})
        if not below:
            raise ConfigError(f"--runs {path}: no run directories (with meta.json) found under it")
        found.extend(below)
    return found
