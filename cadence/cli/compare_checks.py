"""What ``cadence compare`` checks before it spends anything, and how it reports a run that failed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from cadence.errors import ConfigError
from cadence.tracking.records import RunRecord

__all__ = ["TARGET_METRICS", "check_target", "first_error_line", "validate_configs"]

#: The metrics every evaluation of ``cadence train`` logs, which ``--target`` can name for configs.
TARGET_METRICS = ("val_loss", "val_accuracy")
_NOT_METRICS = ("kind", "step", "epoch", "time")
_ERROR_LINE = re.compile(r"^(?!Traceback)\S.*(Error|error)\b")


def validate_configs(configs: Sequence[str | Path], overrides: Sequence[str] = ()) -> None:
    """Resolve every config with the ``--set`` overrides and check that it builds; nothing runs.

    Raises :class:`ConfigError` naming the config file and the field, before any run is started.
    """
    from cadence.config import load_config
    from cadence.config.check import check_config

    for path in configs:
        try:
            check_config(load_config(path, [*overrides, "train.seed=0"]))
        except ConfigError as error:
            message = str(error)
            raise ConfigError(message if str(path) in message else f"{path}: {message}") from None


def check_target(metric: str, runs: Sequence[RunRecord] | None = None) -> None:
    """Refuse a ``--target`` metric the runs do not log (for configs: :data:`TARGET_METRICS`)."""
    logged = list(TARGET_METRICS)
    if runs is not None:
        names = dict.fromkeys(key for run in runs for record in run.evals for key in record)
        logged = [key for key in names if key not in _NOT_METRICS] or logged
    if metric not in logged:
        raise ConfigError(f"--target {metric}: no such metric; the runs log: {', '.join(logged)}")


def first_error_line(log_path: Path, recorded: str | None = None) -> str:
    """The first line of the run's log that names an error, else the error its record holds."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    found = next((line.strip() for line in lines if _ERROR_LINE.match(line)), None)
    if found is None and recorded and recorded.strip():
        found = recorded.strip().splitlines()[0]
    if found is None:
        last = next((line.strip() for line in reversed(lines) if line.strip()), None)
        found = last or f"no error recorded; see {log_path}"
    return found
