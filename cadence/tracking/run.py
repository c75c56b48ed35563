"""Run directories: ``meta.json``, ``metrics.jsonl``, ``summary.json``, ``config.toml``, CSV, TensorBoard.

Layout (read by ``cadence compare`` and the reports, which never need the training process)::

    run_dir/
      meta.json       versions, device, seed, world size, git revision, schedule reprs, status, timing
      config.toml     the resolved config, when the run came from one
      metrics.jsonl   {"kind": "train", "step", "epoch", "lr", "momentum", "loss", "time"} per step and
                      {"kind": "eval", "step", "epoch", "time", "val_loss", "val_accuracy", ...} per eval
      summary.json    {"status", "steps", "wall_time", "final", "best", "skipped_steps", "extra"}
      train.csv, eval.csv         with csv=True
      tensorboard/                with tensorboard=True (needs the ``tensorboard`` package)

Metric records are buffered in memory and appended in blocks (every ``flush_every`` records or
``flush_seconds``, and at every checkpoint, evaluation and the end), so logging costs no file system call per
step. JSON files are replaced atomically so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RunWriter",
    "git_revision",
    "read_json",
    "read_metrics",
    "update_summary_extra",
    "write_json",
]

STATUSES = ("running", "completed", "stopped", "stalled", "diverged", "failed")


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically; non-finite floats become ``null``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(_finite(data), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl`` (only those of ``kind`` when given: "train" or "eval")."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [record for record in records if kind is None or record.get("kind") == kind]


def update_summary_extra(run_dir: str | Path, entries: Mapping[str, Any]) -> None:
    """Merge ``entries`` into ``summary.json``'s ``"extra"`` (for callbacks, in ``on_fit_end``).

    The Trainer writes ``summary.json`` before ``on_fit_end`` and keeps the ``extra`` entries found there
    when it rewrites the file afterwards.
    """
    path = Path(run_dir) / "summary.json"
    summary = read_json(path) if path.exists() else {"extra": {}}
    summary.setdefault("extra", {}).update(entries)
    write_json(path, summary)


def git_revision(directory: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout containing ``directory`` (the working directory), else None."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory or os.getcwd(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and revision else None


def environment_meta() -> dict[str, Any]:
    """Versions and platform for ``meta.json``."""
    import torch

    from cadence import __version__

    return {
        "cadence_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


class RunWriter:
    """Writes one run directory. With ``enabled=False`` (ranks other than 0) every method does nothing.

    Args:
        run_dir: the directory (created if missing).
        enabled: write files at all.
        flush_every: metric records buffered before an append.
        flush_seconds: also append when the oldest buffered record is this old.
        csv: also write ``train.csv`` and ``eval.csv``.
        tensorboard: also write TensorBoard event files under ``run_dir/tensorboard``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        flush_every: int = 200,
        flush_seconds: float = 10.0,
        csv: bool = False,
        tensorboard: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.csv = csv
        self.tensorboard = tensorboard
        self.meta: dict[str, Any] = {}
        self.lines_written = 0
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._csv_columns: dict[str, list[str]] = {}
        self._tensorboard_writer: Any = None
        if enabled and tensorboard:
            from cadence.errors import require

            require("tensorboard", "tensorboard", "TensorBoard logging")
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def start(
        self,
        meta: Mapping[str, Any],
        config: Mapping[str, Any] | None = None,
        *,
        keep_lines: int | None = None,
    ) -> None:
        """Write ``meta.json`` (status "running") and ``config.toml``; start or continue ``metrics.jsonl``.

        ``keep_lines`` (on resume): keep only the first ``keep_lines`` metric records, the ones written
        before the checkpoint being resumed, so the file reads as if the run had never stopped.
        """
        self.meta = {**environment_meta(), **meta, "status": "running", "error": None}
        self.meta.setdefault("started_at", _now())
        if not self.enabled:
            return
        if keep_lines is None:
            self.metrics_path.write_text("", encoding="utf-8")
            self.lines_written = 0
            for name in ("train.csv", "eval.csv"):
                (self.run_dir / name).unlink(missing_ok=True)
        else:
            self._truncate_metrics(keep_lines)
        if config is not None:
            from cadence.tracking.toml_writer import dump

            dump(config, self.run_dir / "config.toml")
        write_json(self.run_dir / "meta.json", self.meta)
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard_writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _truncate_metrics(self, keep_lines: int) -> None:
        lines: list[str] = []
        if self.metrics_path.exists():
            lines = [
                line for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        lines = lines[:keep_lines]
        self.metrics_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.lines_written = len(lines)
        if self.csv:  # rebuild the CSV files from the kept records
            for name in ("train.csv", "eval.csv"):
                (self.run_dir / name).unlink(missing_ok=True)
            self._write_csv([json.loads(line) for line in lines])

    def log(self, record: dict[str, Any]) -> None:
        """Buffer one metric record (a flat dict with a "kind")."""
        if not self.enabled:
            return
        self._buffer.append(record)
        if len(self._buffer) >= self.flush_every or time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self) -> int:
        """Append buffered records; returns the number of records in ``metrics.jsonl``."""
        if not self.enabled:
            return self.lines_written
        self._last_flush = time.monotonic()
        if not self._buffer:
            return self.lines_written
        records, self._buffer = self._buffer, []
        text = "".join(json.dumps(_finite(record)) + "\n" for record in records)
        with self.metrics_path.open("a", encoding="utf-8") as file:
            file.write(text)
            file.flush()
        self.lines_written += len(records)
        if self.csv:
            self._write_csv(records)
        if self._tensorboard_writer is not None:
            self._write_tensorboard(records)
        return self.lines_written

    def _write_csv(self, records: list[dict[str, Any]]) -> None:
        for kind in ("train", "eval"):
            rows = [record for record in records if record.get("kind") == kind]
            if not rows:
                continue
            path = self.run_dir / f"{kind}.csv"
            if kind not in self._csv_columns:
                if path.exists() and path.stat().st_size:
                    with path.open(encoding="utf-8", newline="") as file:
                        self._csv_columns[kind] = next(csv.reader(file))
                else:
                    self._csv_columns[kind] = [key for key in rows[0] if key != "kind"]
                    with path.open("w", encoding="utf-8", newline="") as file:
                        csv.writer(file).writerow(self._csv_columns[kind])
            columns = self._csv_columns[kind]
            with path.open("a", encoding="utf-8", newline="") as file:
                writer = csv.writer(file)
                for row in rows:
                    writer.writerow(
                        ["" if row.get(column) is None else row.get(column) for column in columns]
                    )

    def _write_tensorboard(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            prefix = "train/" if record.get("kind") == "train" else "eval/"
            for key, value in record.items():
                if key in ("kind", "step", "time") or not isinstance(value, (int, float)):
                    continue
                self._tensorboard_writer.add_scalar(prefix + key, value, record.get("step", 0))
        self._tensorboard_writer.flush()

    def update_meta(self, **fields: Any) -> None:
        """Change fields of ``meta.json`` and rewrite it."""
        self.meta.update(fields)
        if self.enabled:
            write_json(self.run_dir / "meta.json", self.meta)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``summary.json``, keeping ``extra`` entries that callbacks already added to the file."""
        if not self.enabled:
            return
        path = self.run_dir / "summary.json"
        extra = dict(summary.get("extra", {}))
        if path.exists():
            with contextlib.suppress(OSError, ValueError):
                extra = {**read_json(path).get("extra", {}), **extra}
        write_json(path, {**summary, "extra": extra})

    def finish(self, status: str, error: str | None = None, wall_time: float | None = None) -> None:
        """Flush metrics and record the final status in ``meta.json``."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.flush()
        if self._tensorboard_writer is not None:
            self._tensorboard_writer.close()
            self._tensorboard_writer = None
        self.update_meta(status=status, error=error, finished_at=_now(), wall_time=wall_time)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _finite(value: Any) -> Any:
    # JSON has no NaN/inf; strict readers (browsers, jq) reject them, so they become null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
