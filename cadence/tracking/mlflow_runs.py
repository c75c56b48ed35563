"""Reading runs back from an MLflow tracking store, for ``cadence compare --mlflow-experiment NAME``.

Each MLflow run that :class:`~cadence.tracking.loggers.MLflowLogger` wrote becomes a
:class:`~cadence.tracking.records.RunRecord`: from its run directory when that is still on this machine
(the ``cadence.run_dir`` tag), else from the store itself: the ``meta.json`` and ``summary.json`` artefacts,
the metric histories (``train/loss``, ``eval/val_accuracy``, ... per step) and the tags.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError, require
from cadence.tracking.records import RunRecord, load_run
from cadence.tracking.run_dir import RunDir

__all__ = ["load_mlflow_runs"]

_STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "failed", "RUNNING": "incomplete"}


def load_mlflow_runs(experiment: str, tracking_uri: str | None = None) -> list[RunRecord]:
    """The runs of the MLflow experiment ``experiment`` (raises ConfigError when it does not exist)."""
    require("mlflow", "mlflow", "Reading runs from MLflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [item.name for item in client.search_experiments()]
        raise ConfigError(
            f"--mlflow-experiment {experiment!r}: no such experiment in {client.tracking_uri}; "
            f"experiments there: {', '.join(names) or 'none'}"
        )
    records: list[RunRecord] = []
    token = None
    while True:
        page = client.search_runs([found.experiment_id], max_results=1000, page_token=token)
        records += [_record(client, run) for run in page]
        token = page.token
        if not token:
            break
    if not records:
        raise ConfigError(f"--mlflow-experiment {experiment!r}: the experiment has no runs")
    return sorted(records, key=lambda record: (record.name, record.seed if record.seed is not None else -1))


def _record(client: Any, run: Any) -> RunRecord:
    tags = run.data.tags
    run_dir = Path(tags["cadence.run_dir"]) if tags.get("cadence.run_dir") else None
    if run_dir is not None and RunDir(run_dir).is_run():
        return load_run(run_dir, name=tags.get("cadence.group"))
    meta = _artefact(client, run.info.run_id, RunDir.META) or {}
    summary = _artefact(client, run.info.run_id, RunDir.SUMMARY)
    steps: dict[tuple[str, int], dict[str, Any]] = {}
    for key in run.data.metrics:
        kind, _, name = key.partition("/")
        if kind not in ("train", "eval") or not name:
            continue
        for metric in client.get_metric_history(run.info.run_id, key):
            record = steps.setdefault((kind, int(metric.step)), {"kind": kind, "step": int(metric.step)})
            record[name] = metric.value
    ordered = [steps[key] for key in sorted(steps, key=lambda key: (key[1], key[0] == "eval"))]
    status = tags.get("cadence.status") or _STATUS.get(run.info.status, "incomplete")
    seed = meta.get("seed", run.data.params.get("train.seed", run.data.params.get("seed")))
    return RunRecord(
        path=Path(f"runs:/{run.info.run_id}"),
        name=tags.get("cadence.group") or meta.get("name") or run.info.run_name or run.info.run_id,
        seed=int(seed) if seed not in (None, "None") else None,
        status=status,
        error=meta.get("error"),
        meta={**meta, "trackers": {**(meta.get("trackers") or {})}},
        summary=summary,
        train=[record for record in ordered if record["kind"] == "train"],
        evals=[record for record in ordered if record["kind"] == "eval"],
    )


def _artefact(client: Any, run_id: str, name: str) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as directory:
        try:
            path = client.download_artifacts(run_id, name, directory)
            value = json.loads(Path(path).read_text(encoding="utf-8"))
        except Exception:  # not logged (log_artifacts=False), or unreadable: the metrics still count
            return None
    return value if isinstance(value, dict) else None
