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
import datetime
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.tracking.run_dir import RunDir

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
    path = RunDir(run_dir).metrics_path
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [record for record in records if kind is None or record.get("kind") == kind]


def update_summary_extra(run_dir: str | Path, entries: Mapping[str, Any]) -> None:
    """Merge ``entries`` into ``summary.json``'s ``"extra"``, for code that runs outside the Trainer's writer
    (the integrations' bridge after the callbacks' ``on_fit_end``, ``cadence demo`` after a run).

    Callbacks do not call it: they put their entries on ``TrainState.summary_extra`` and the Trainer writes
    them. :meth:`RunWriter.write_summary` keeps the ``extra`` entries it finds in the file.
    """
    path = RunDir(run_dir).summary_path
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
    """Writes one run directory and feeds the run's loggers (see :mod:`cadence.tracking.loggers`).

    Every metric record goes through the :class:`~cadence.tracking.loggers.Logger` calls, to the run
    directory's records (``metrics.jsonl``, the CSV files: an error there is raised) and to the trackers
    (TensorBoard, MLflow, W&B, custom loggers: a tracker that raises is switched off with one warning).

    Args:
        run_dir: the directory (created if missing).
        enabled: write files at all (False on ranks other than 0 and without a run directory).
        flush_every: metric records buffered before an append.
        flush_seconds: also append when the oldest buffered record is this old.
        csv: also write ``train.csv`` and ``eval.csv``.
        tensorboard: also write TensorBoard event files under ``run_dir/tensorboard``.
        loggers: the trackers, called on this process even without files (pass none on ranks other than 0).
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
        loggers: Sequence[Any] = (),
    ) -> None:
        from cadence.tracking.loggers import CsvLogger, JsonlLogger, _Tracker, logger_name, resolve_loggers

        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.csv = csv
        self.tensorboard = tensorboard
        self.meta: dict[str, Any] = {}
        self._pending = 0
        self._last_flush = time.monotonic()
        self._summary: dict[str, Any] = {}
        self.layout = RunDir(self.run_dir)
        self._jsonl = JsonlLogger(self.layout.metrics_path, encode=_encode)
        self._csv = CsvLogger(self.run_dir) if csv else None
        #: The run directory's own records: errors propagate.
        self._records: list[Any] = [self._jsonl, *([self._csv] if self._csv is not None else [])]
        trackers = resolve_loggers(loggers, tensorboard=tensorboard and enabled)
        self._trackers = [_Tracker(logger, logger_name(logger)) for logger in trackers]
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> Path:
        return self.layout.metrics_path

    @property
    def lines_written(self) -> int:
        return self._jsonl.lines_written

    @property
    def loggers(self) -> list[Any]:
        """The trackers still logging (those that raised are left out)."""
        return [tracker.logger for tracker in self._trackers if tracker.error is None]

    def start(
        self,
        meta: Mapping[str, Any],
        config: Mapping[str, Any] | None = None,
        *,
        keep_lines: int | None = None,
    ) -> None:
        """Write ``meta.json`` (status "running") and ``config.toml``; start or continue ``metrics.jsonl``;
        start the trackers and give them the hyperparameters.

        ``keep_lines`` (on resume): keep only the first ``keep_lines`` metric records, the ones written
        before the checkpoint being resumed, so the file reads as if the run had never stopped.
        """
        from cadence.tracking.loggers import RunInfo, flatten_params

        previous_trackers = dict(meta.get("trackers") or {})
        self.meta = {**environment_meta(), **meta, "status": "running", "error": None}
        self.meta.setdefault("started_at", _now())
        if self.enabled:
            kept = self._jsonl.reset(keep_lines)
            if self._csv is not None:
                self._csv.reset(kept)
            if config is not None:
                from cadence.tracking.toml_writer import dump

                dump(config, self.layout.config_path)
        params = flatten_params(config) if config else _meta_params(self.meta)
        trackers: dict[str, Any] = {}
        for tracker in self._trackers:
            run = RunInfo(
                run_dir=self.run_dir if self.enabled else None,
                name=self.meta.get("name"),
                meta=self.meta,
                config=config,
                previous=previous_trackers.get(tracker.name) if keep_lines is not None else None,
            )
            reference = tracker.call("start", run)
            tracker.call("log_hparams", params)
            tracker.reference = dict(reference or {})
            trackers[tracker.name] = self._tracker_entry(tracker)
        self.meta["trackers"] = trackers
        if self.enabled:
            write_json(self.layout.meta_path, self.meta)

    @staticmethod
    def _tracker_entry(tracker: Any) -> dict[str, Any]:
        return {**tracker.reference, **({"error": tracker.error} if tracker.error else {})}

    def log(self, record: dict[str, Any]) -> None:
        """Pass one metric record (a flat dict with a "kind") to every logger; they may buffer it."""
        step = int(record.get("step", 0))
        if self.enabled:
            for logger in self._records:
                logger.log_metrics(record, step)
        for tracker in self._trackers:
            tracker.call("log_metrics", record, step)
        self._pending += 1
        if self._pending >= self.flush_every or time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self) -> int:
        """Append the buffered records and flush the loggers; returns the records in ``metrics.jsonl``."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return self.lines_written
        self._pending = 0
        if self.enabled:
            for logger in self._records:
                logger.flush()
        for tracker in self._trackers:
            tracker.call("flush")
        return self.lines_written

    def update_meta(self, **fields: Any) -> None:
        """Change fields of ``meta.json`` and rewrite it."""
        self.meta.update(fields)
        if self.enabled:
            write_json(self.layout.meta_path, self.meta)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``summary.json``, keeping ``extra`` entries that callbacks already added to the file."""
        self._summary = {**summary}
        if not self.enabled:
            return
        path = self.layout.summary_path
        extra = dict(summary.get("extra", {}))
        if path.exists():
            with contextlib.suppress(OSError, ValueError):
                extra = {**read_json(path).get("extra", {}), **extra}
        self._summary = {**summary, "extra": extra}
        write_json(path, self._summary)

    def finish(self, status: str, error: str | None = None, wall_time: float | None = None) -> None:
        """Flush metrics, record the final status in ``meta.json`` and finish the loggers."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.flush()
        if self.enabled:
            for logger in self._records:
                logger.finish(status)
        self.update_meta(status=status, error=error, finished_at=_now(), wall_time=wall_time)
        for tracker in self._trackers:
            tracker.call("log_summary", self._summary)
            tracker.call("finish", status)
        entries = {tracker.name: self._tracker_entry(tracker) for tracker in self._trackers}
        if entries != self.meta.get("trackers", {}):
            self.update_meta(trackers=entries)  # meta.json says which tracker failed, and where


def _encode(record: Mapping[str, Any]) -> str:
    return json.dumps(_finite(record))


def _meta_params(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a run not made from a config: what ``meta.json`` says about its settings."""
    keys = (
        "seed",
        "total_steps",
        "steps_per_epoch",
        "accumulation_steps",
        "precision",
        "grad_clip",
        "label_smoothing",
        "world_size",
        "schedules",
        "callbacks",
    )
    from cadence.tracking.loggers import flatten_params

    return flatten_params({key: meta[key] for key in keys if key in meta and meta[key] is not None})


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
