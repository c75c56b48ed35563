"""examples/trackers.py runs offline and every tracker sees the same run."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trackers.py"


def test_the_trackers_example_logs_the_same_run_everywhere(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    result = runpy.run_path(str(EXAMPLE), run_name="example")["main"](
        ["--steps", "80", "--out", str(tmp_path)]
    )
    assert result["steps"] == 80
    mine = result["logger"]
    assert mine.status == "completed"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = {record["step"]: record["loss"] for record in records if record["kind"] == "train"}
    assert mine.losses == pytest.approx(train)  # the custom logger saw exactly the records on disk
    evals = [record["val_accuracy"] for record in records if record["kind"] == "eval"]
    assert mine.best == pytest.approx(max(evals))

    from mlflow.tracking import MlflowClient

    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run = client.get_run(meta["trackers"]["mlflow"]["run_id"])
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert history == pytest.approx(train)
    assert run.info.status == "FINISHED"
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert "80 steps, best test accuracy" in capsys.readouterr().out
