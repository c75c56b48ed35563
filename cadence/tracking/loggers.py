"""Experiment-tracker hooks: the :class:`Logger` protocol, the run records written through it, and loggers
for TensorBoard, MLflow and Weights & Biases.

Every metric record of a run goes through the same three calls, to the run directory's own records
(``metrics.jsonl``, the CSV files) and to every tracker alike::

    log_hparams(params)          once at the start: the resolved config flattened to dotted keys
    log_metrics(metrics, step)   every record of metrics.jsonl ({"kind": "train" | "eval", ...})
    finish(status)               once at the end: "completed", "stopped", "stalled", "diverged" or "failed"

A logger may also have ``start(run)`` (called first with a :class:`RunInfo`; what it returns, such as the
tracker's run ID and URL, is stored under ``"trackers"`` in ``meta.json``), ``flush()`` (called with every
append to ``metrics.jsonl``: loggers may buffer until then) and ``log_summary(summary)`` (``summary.json``,
called once before ``finish``). Only rank 0 logs. A tracker that raises is switched off for the rest of the
run with one warning naming it; training goes on and the files in the run directory stay complete.

The trackers' packages are optional extras, imported when a run starts (``pip install 'cadence[mlflow]'``,
``'cadence[wandb]'``, ``'cadence[tensorboard]'``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cadence.errors import ConfigError, MissingDependencyError, require
from cadence.tracking.run_dir import RunDir

__all__ = [
    "LOGGER_NAMES",
    "CsvLogger",
    "JsonlLogger",
    "Logger",
    "MLflowLogger",
    "RunInfo",
    "TensorBoardLogger",
    "WandbLogger",
    "create_logger",
    "flatten_params",
    "logger_name",
    "resolve_loggers",
    "scalar_metrics",
]

#: Record fields that are not metrics.
_NOT_METRICS = frozenset({"kind", "step", "time"})

#: The methods every logger has (the :class:`Logger` protocol).
_METHODS = ("log_hparams", "log_metrics", "finish")

#: The statuses of a run that ended normally (its metrics are real).
_GOOD_STATUSES = ("completed", "stopped", "stalled")


@runtime_checkable
class Logger(Protocol):
    """What the Trainer calls on each logger (see the module docstring for the optional methods)."""

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        """The run's hyperparameters, flat: ``{"train.epochs": 3, "schedule.max_lr": 0.1, ...}``."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """One record: ``"kind"`` ("train" or "eval"), ``"epoch"``, ``"time"`` and the values."""

    def finish(self, status: str) -> None:
        """The run ended with ``status``; release what the logger holds."""


@dataclass(frozen=True)
class RunInfo:
    """What ``start(run)`` receives: the run directory (None without one) and its description."""

    run_dir: Path | None
    name: str | None
    meta: Mapping[str, Any]
    config: Mapping[str, Any] | None = None
    #: On a resume, what this logger's ``start`` returned for the earlier part of the run (else None).
    previous: Mapping[str, Any] | None = None


def logger_name(logger: Any) -> str:
    """A logger's ``name`` attribute, else its class name."""
    return str(getattr(logger, "name", None) or type(logger).__name__)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one record as ``{"train/loss": ..., "train/lr": ..., "eval/val_accuracy": ...}``.

    Non-numbers (``lr_groups``, the ``skipped`` flag) and non-finite values are left out.
    """
    prefix = "eval/" if metrics.get("kind") == "eval" else "train/"
    values: dict[str, float] = {}
    for key, value in metrics.items():
        if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            values[prefix + key] = float(value)
    return values


def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """Nested tables as dotted keys with plain values (lists and None as text), for hparams and params."""
    flat: dict[str, str | int | float | bool] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value), default=str)
        else:
            flat[name] = str(value)
    return flat


def _available(module: str, extra: str, purpose: str) -> None:
    """Raise the install message now when ``module`` is missing (without importing it: that waits for
    the run's start)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"{purpose} needs the package '{module}': pip install 'cadence[{extra}]'"
        )


# -- the run directory's records ---------------------------------------------------------------------------


class JsonlLogger:
    """``metrics.jsonl``: records buffered and appended in one write at every ``flush``."""

    name = "jsonl"

    def __init__(self, path: str | Path, encode: Callable[[Mapping[str, Any]], str] = json.dumps) -> None:
        self.path = Path(path)
        self.encode = encode
        self.lines_written = 0
        self._buffer: list[Mapping[str, Any]] = []

    def reset(self, keep_lines: int | None = None) -> list[dict[str, Any]]:
        """Start the file afresh, or keep its first ``keep_lines`` records (a resume); returns those kept."""
        lines: list[str] = []
        if keep_lines is not None and self.path.exists():
            lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
            lines = lines[:keep_lines]
        self.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.lines_written = len(lines)
        self._buffer = []
        return [json.loads(line) for line in lines]

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        """The hyperparameters are in ``config.toml`` and ``meta.json``: nothing to add here."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self._buffer.append(metrics)

    def flush(self) -> int:
        """Append the buffered records; returns the number of records in the file."""
        if self._buffer:
            records, self._buffer = self._buffer, []
            text = "".join(self.encode(record) + "\n" for record in records)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(text)
                file.flush()
            self.lines_written += len(records)
        return self.lines_written

    def finish(self, status: str) -> None:
        self.flush()


class CsvLogger:
    """``train.csv`` and ``eval.csv`` in ``run_dir``: one row per record, the columns of the first record."""

    name = "csv"

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._columns: dict[str, list[str]] = {}
        self._buffer: list[Mapping[str, Any]] = []

    def reset(self, records: Sequence[Mapping[str, Any]] = ()) -> None:
        """Delete the files and write ``records`` again (the ones a resume keeps)."""
        for kind in ("train", "eval"):
            RunDir(self.run_dir).csv_path(kind).unlink(missing_ok=True)
        self._columns = {}
        self._buffer = list(records)
        self.flush()

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        """CSV holds metrics only."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self._buffer.append(metrics)

    def flush(self) -> None:
        import csv

        records, self._buffer = self._buffer, []
        for kind in ("train", "eval"):
            rows = [record for record in records if record.get("kind") == kind]
            if not rows:
                continue
            path = RunDir(self.run_dir).csv_path(kind)
            if kind not in self._columns:
                if path.exists() and path.stat().st_size:
                    with path.open(encoding="utf-8", newline="") as file:
                        self._columns[kind] = next(csv.reader(file))
                else:
                    self._columns[kind] = [key for key in rows[0] if key != "kind"]
                    with path.open("w", encoding="utf-8", newline="") as file:
                        csv.writer(file).writerow(self._columns[kind])
            columns = self._columns[kind]
            with path.open("a", encoding="utf-8", newline="") as file:
                writer = csv.writer(file)
                for row in rows:
                    writer.writerow(
                        ["" if row.get(column) is None else row.get(column) for column in columns]
                    )

    def finish(self, status: str) -> None:
        self.flush()


# -- trackers ------------------------------------------------------------------------------------------------


class TensorBoardLogger:
    """TensorBoard event files: every metric as a scalar (``train/loss``, ``eval/val_accuracy``), and at the
    end the hyperparameters with the final and best metrics (``final/val_accuracy``, ``best/val_accuracy``)
    for the HParams dashboard.

    Args:
        log_dir: where the event files go; default ``run_dir/tensorboard``.
    """

    name = "tensorboard"

    def __init__(self, log_dir: str | Path | None = None) -> None:
        _available("tensorboard", "tensorboard", "TensorBoard logging")
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._given_dir = self.log_dir
        self._writer: Any = None
        self._params: dict[str, Any] = {}
        self._summary: Mapping[str, Any] = {}

    def start(self, run: RunInfo) -> dict[str, Any]:
        require("tensorboard", "tensorboard", "TensorBoard logging")
        from torch.utils.tensorboard import SummaryWriter

        if self._given_dir is None and run.run_dir is None:
            raise ConfigError("the tensorboard logger needs a run_dir or a log_dir")
        self.log_dir = self._given_dir if self._given_dir is not None else RunDir(run.run_dir).tensorboard_dir
        self._writer = SummaryWriter(str(self.log_dir))
        return {"log_dir": str(self.log_dir)}

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        self._params = dict(flatten_params(params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        for tag, value in scalar_metrics(metrics).items():
            self._writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self._writer.flush()

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self._summary = summary

    def finish(self, status: str) -> None:
        if self._writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        final = _summary_metrics(self._summary)
        step = int(self._summary.get("steps") or 0)
        if self._params or final:
            params = {**self._params, "status": status}
            experiment, start, end = hparams(params, final)
            for summary in (experiment, start, end):
                self._writer.file_writer.add_summary(summary)
            for tag, value in final.items():  # the values the HParams dashboard shows
                self._writer.add_scalar(tag, value, step)
        self._writer.close()
        self._writer = None


class MLflowLogger:
    """An MLflow run: the hyperparameters as params, every metric per step, tags, the final status, and
    ``config.toml``, ``summary.json`` and ``meta.json`` as artefacts.

    Args:
        tracking_uri: the tracking store (``"sqlite:///mlflow.db"``, ``"http://host:5000"``, a
            ``file://`` folder); default MLflow's own (``MLFLOW_TRACKING_URI``, else its default store).
        experiment: the experiment's name (created if missing).
        run_name: default the run's name, else the run directory's name.
        tags: more tags for the run.
        log_artifacts: log the run directory's ``config.toml``, ``summary.json`` and ``meta.json``.
        flush_every: metric values buffered before one ``log_batch``.
    """

    name = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "cadence",
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        log_artifacts: bool = True,
        flush_every: int = 500,
    ) -> None:
        _available("mlflow", "mlflow", "MLflow logging")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.log_artifacts = log_artifacts
        self.flush_every = flush_every
        self.run_id: str | None = None
        self._client: Any = None
        self._run_dir: Path | None = None
        self._metrics: list[Any] = []
        self._summary: Mapping[str, Any] = {}
        self._resumed = False

    def start(self, run: RunInfo) -> dict[str, Any]:
        require("mlflow", "mlflow", "MLflow logging")
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(self.tracking_uri)
        self.tracking_uri = self._client.tracking_uri
        found = self._client.get_experiment_by_name(self.experiment)
        experiment_id = (
            found.experiment_id if found is not None else self._client.create_experiment(self.experiment)
        )
        self._run_dir = run.run_dir
        name = self.run_name or run.name or (run.run_dir.name if run.run_dir is not None else None)
        tags = {
            "cadence.run_dir": str(run.run_dir.resolve()) if run.run_dir is not None else "",
            "cadence.group": _group_name(run),
            "cadence.seed": str(run.meta.get("seed")),
            "cadence.version": str(run.meta.get("cadence_version")),
        }
        if run.meta.get("git_revision"):
            tags["mlflow.source.git.commit"] = str(run.meta["git_revision"])
        tags.update({str(key): str(value) for key, value in self.tags.items()})
        previous = (run.previous or {}).get("run_id")
        self._resumed = bool(previous)
        if previous:  # a resume continues the same MLflow run
            self.run_id = str(previous)
            self._client.update_run(self.run_id, status="RUNNING")
            for key, value in tags.items():
                self._client.set_tag(self.run_id, key, value)
        else:
            created = self._client.create_run(experiment_id, tags=tags, run_name=name)
            self.run_id = created.info.run_id
        reference = {
            "run_id": self.run_id,
            "experiment_id": experiment_id,
            "experiment": self.experiment,
            "tracking_uri": self.tracking_uri,
        }
        if str(self.tracking_uri).startswith(("http://", "https://")):
            base = str(self.tracking_uri).rstrip("/")
            reference["url"] = f"{base}/#/experiments/{experiment_id}/runs/{self.run_id}"
        return reference

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)[:6000]) for key, value in flatten_params(params).items()]
        if self._resumed:  # MLflow params cannot change: a resumed run adds the new keys only
            logged = self._client.get_run(self.run_id).data.params
            items = [item for item in items if item.key not in logged]
        for index in range(0, len(items), 100):  # MLflow's limit per batch
            self._client.log_batch(self.run_id, params=items[index : index + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._metrics += [Metric(key, value, stamp, step) for key, value in scalar_metrics(metrics).items()]
        if len(self._metrics) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        metrics, self._metrics = self._metrics, []
        for index in range(0, len(metrics), 1000):
            self._client.log_batch(self.run_id, metrics=metrics[index : index + 1000])

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self._summary = summary

    def finish(self, status: str) -> None:
        if self._client is None or self.run_id is None:
            return
        from mlflow.entities import Metric

        self.flush()
        stamp = int(time.time() * 1000)
        step = int(self._summary.get("steps") or 0)
        best = [
            Metric(key, value, stamp, step)
            for key, value in _summary_metrics(self._summary).items()
            if key.startswith("best/")
        ]
        if best:
            self._client.log_batch(self.run_id, metrics=best)
        self._client.set_tag(self.run_id, "cadence.status", status)
        if self.log_artifacts and self._run_dir is not None:
            for name in RunDir.ARTEFACTS:
                if (self._run_dir / name).exists():
                    self._client.log_artifact(self.run_id, str(self._run_dir / name))
        self._client.set_terminated(self.run_id, "FINISHED" if status in _GOOD_STATUSES else "FAILED")
        self._client = None


class WandbLogger:
    """A Weights & Biases run: the hyperparameters as its config, every metric per step, the final and best
    metrics in its summary, and ``config.toml``, ``summary.json`` and ``meta.json`` saved with it.

    Args:
        project: the W&B project.
        entity: the team or user (default W&B's).
        mode: ``"online"``, ``"offline"`` (nothing leaves the machine; ``wandb sync`` uploads later) or
            ``"disabled"``; default W&B's (``WANDB_MODE``, else online).
        dir: where W&B writes its files; default the run directory.
        group: the W&B group (e.g. the config's name, to gather seeds).
        tags: the run's W&B tags.
        run_name: default the run's name, else the run directory's name.
        log_artifacts: save the run directory's ``config.toml``, ``summary.json`` and ``meta.json``.
    """

    name = "wandb"

    def __init__(
        self,
        project: str = "cadence",
        entity: str | None = None,
        mode: str | None = None,
        dir: str | Path | None = None,
        group: str | None = None,
        tags: Sequence[str] | None = None,
        run_name: str | None = None,
        log_artifacts: bool = True,
    ) -> None:
        _available("wandb", "wandb", "Weights & Biases logging")
        if mode not in (None, *WANDB_MODES):
            raise ConfigError(f"wandb mode must be one of {list(WANDB_MODES)}, got {mode!r}")
        self.project = project
        self.entity = entity
        self.mode = mode
        self.dir = Path(dir) if dir is not None else None
        self.group = group
        self.tags = list(tags or ())
        self.run_name = run_name
        self.log_artifacts = log_artifacts
        self.run: Any = None
        self._run_dir: Path | None = None

    def start(self, run: RunInfo) -> dict[str, Any]:
        wandb = require("wandb", "wandb", "Weights & Biases logging")
        self._run_dir = run.run_dir
        directory = self.dir or run.run_dir
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        previous = (run.previous or {}).get("run_id")
        options: dict[str, Any] = {
            "project": self.project,
            "entity": self.entity,
            "name": self.run_name or run.name or (run.run_dir.name if run.run_dir is not None else None),
            "group": self.group,
            "tags": self.tags or None,
            "dir": str(directory) if directory is not None else None,
            "mode": self.mode,
        }
        if previous:  # a resume continues the same W&B run
            options.update(id=str(previous), resume="allow")
        self.run = wandb.init(**{key: value for key, value in options.items() if value is not None})
        return {
            "run_id": self.run.id,
            "project": self.project,
            "entity": self.entity,
            "mode": self.mode,
            "url": None if getattr(self.run, "offline", False) else getattr(self.run, "url", None),
            "dir": str(getattr(self.run, "dir", "") or ""),
        }

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(dict(flatten_params(params)), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self.run.log(scalar_metrics(metrics), step=step)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        self.run.summary.update(_summary_metrics(summary))

    def finish(self, status: str) -> None:
        if self.run is None:
            return
        self.run.summary.update({"status": status})
        if self.log_artifacts and self._run_dir is not None:
            for name in RunDir.ARTEFACTS:
                if (self._run_dir / name).exists():
                    self.run.save(str(self._run_dir / name), base_path=str(self._run_dir), policy="now")
        self.run.finish(exit_code=0 if status in _GOOD_STATUSES else 1)
        self.run = None


WANDB_MODES = ("online", "offline", "disabled")


def _group_name(run: RunInfo) -> str:
    """The name ``cadence compare`` groups the run under (as :func:`cadence.tracking.records.load_run`)."""
    from cadence.tracking.records import _default_name

    if run.run_dir is None:
        return str(run.name or "")
    return _default_name(run.run_dir, dict(run.meta))


def _summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``summary.json``'s final and best numbers as ``{"final/val_accuracy": ..., "best/...": ...}``."""
    values: dict[str, float] = {}
    for section in ("final", "best"):
        for key, value in (summary.get(section) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values[f"{section}/{key}"] = float(value)
    return values


# -- building loggers from names -----------------------------------------------------------------------------

#: Logger name -> class, for ``Trainer(loggers=["mlflow"])`` and ``[train] loggers = ["mlflow"]``.
LOGGERS: dict[str, type] = {
    "tensorboard": TensorBoardLogger,
    "mlflow": MLflowLogger,
    "wandb": WandbLogger,
}
LOGGER_NAMES: tuple[str, ...] = tuple(LOGGERS)


def create_logger(name: str, **options: Any) -> Any:
    """The logger called ``name`` (one of :data:`LOGGER_NAMES`) with ``options`` (its keyword arguments)."""
    if name not in LOGGERS:
        raise ConfigError(f"loggers: unknown logger {name!r}; allowed: {', '.join(LOGGER_NAMES)}")
    try:
        return LOGGERS[name](**options)
    except TypeError as error:
        raise ConfigError(f"[loggers.{name}] {error}") from error


def resolve_loggers(loggers: Iterable[Any] | None, *, tensorboard: bool = False) -> list[Any]:
    """Logger objects for ``Trainer(loggers=...)``: names become loggers, ``tensorboard=True`` adds one.

    Raises :class:`~cadence.errors.ConfigError` for an unknown name or an object without the
    :class:`Logger` methods.
    """
    if isinstance(loggers, (str, bytes)):
        raise ConfigError(f"loggers must be a list of loggers or names, got {loggers!r}")
    resolved: list[Any] = []
    for index, item in enumerate(loggers or ()):
        logger = create_logger(item) if isinstance(item, str) else item
        missing = [name for name in _METHODS if not callable(getattr(logger, name, None))]
        if missing:
            raise ConfigError(
                f"loggers[{index}]: {type(logger).__name__} is not a logger (it lacks {', '.join(missing)}); "
                f"give an object with {', '.join(_METHODS)}, or one of {', '.join(LOGGER_NAMES)}"
            )
        resolved.append(logger)
    if tensorboard and not any(isinstance(logger, TensorBoardLogger) for logger in resolved):
        resolved.insert(0, TensorBoardLogger())
    names = [logger_name(logger) for logger in resolved]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"loggers: {', '.join(twice)} given twice; give each logger once")
    return resolved


@dataclass
class _Tracker:
    """A logger that may fail: the first exception switches it off with one warning."""

    logger: Any
    name: str
    error: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, *arguments: Any) -> Any:
        if self.error is not None:
            return None
        function = getattr(self.logger, method, None)
        if function is None:
            return None
        try:
            return function(*arguments)
        except Exception as exception:
            self.error = f"{method}: {type(exception).__name__}: {exception}"
            warnings.warn(
                f"logger {self.name!r} failed in {self.error}; it is switched off for the rest of the run "
                "(training goes on, the run directory's records are complete)",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
