"""TensorBoard, MLflow and W&B loggers, each read back from what it wrote (no network: local stores only)."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import pytest
import torch

from cadence.tracking.run import read_json, read_metrics
from cadence.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from trainer_helpers import as_list, make_data, make_model

CONFIG = {"train": {"epochs": 2, "seed": 0}, "schedule": {"name": "constant", "value": 0.05}}


def _fit(run_dir: Path, **options) -> Trainer:
    inputs, targets = make_data()
    trainer = Trainer(
        (model := make_model()),
        torch.optim.SGD(model.parameters(), lr=0.05),
        torch.nn.functional.cross_entropy,
        as_list(inputs, targets, 16),
        eval_data=as_list(inputs, targets, 48),
        epochs=2,
        run_dir=run_dir,
        progress=False,
        log_every_n_steps=1,
        checkpoint_every_epochs=None,
        config=CONFIG,
        name="tiny",
        **options,
    )
    trainer.fit()
    return trainer


def _train_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(record["step"], record["loss"]) for record in read_metrics(run_dir, "train")]


def _assert_same_points(got, expected) -> None:
    """Equal steps, values equal to float32 precision (TensorBoard stores float32)."""
    assert [step for step, _ in got] == [step for step, _ in expected]
    assert [value for _, value in got] == pytest.approx([value for _, value in expected], rel=1e-6)


# -- TensorBoard -------------------------------------------------------------------------------------------


def test_tensorboard_scalars_and_hparams_read_back_from_the_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir = tmp_path / "run"
    _fit(run_dir, loggers=["tensorboard"])
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    losses = [(event.step, event.value) for event in events.Scalars("train/loss")]
    _assert_same_points(losses, _train_losses(run_dir))
    accuracy = [event.value for event in events.Scalars("eval/val_accuracy")]
    assert len(accuracy) == 2
    summary = read_json(run_dir / "summary.json")
    final = events.Scalars("final/val_accuracy")
    assert [event.value for event in final] == pytest.approx([summary["final"]["val_accuracy"]])
    assert [event.value for event in events.Scalars("best/val_loss")] == pytest.approx(
        [summary["best"]["val_loss"]]
    )
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["train.epochs"].number_value == 2
    assert hparams["schedule.name"].string_value == "constant"
    assert hparams["status"].string_value == "completed"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {info.name.tag for info in experiment.metric_infos} >= {"final/val_accuracy", "best/val_loss"}
    assert read_json(run_dir / "meta.json")["trackers"]["tensorboard"] == {
        "log_dir": str(run_dir / "tensorboard")
    }


# -- MLflow -------------------------------------------------------------------------------------------------


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file://" + str(store))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this for file stores
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return "file://" + str(store)


def test_mlflow_run_read_back_from_a_local_file_store(tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    from cadence.tracking.loggers import MLflowLogger

    run_dir = tmp_path / "run"
    logger = MLflowLogger(tracking_uri=mlflow_store, experiment="cadence-tests", tags={"team": "schedules"})
    _fit(run_dir, loggers=[logger])
    reference = read_json(run_dir / "meta.json")["trackers"]["mlflow"]
    assert reference["experiment"] == "cadence-tests"
    assert reference["tracking_uri"] == mlflow_store
    client = MlflowClient(mlflow_store)
    run = client.get_run(reference["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny"
    assert run.info.experiment_id == reference["experiment_id"]
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["schedule.value"] == "0.05"
    assert run.data.tags["team"] == "schedules"
    assert run.data.tags["cadence.status"] == "completed"
    assert run.data.tags["cadence.run_dir"] == str(run_dir.resolve())
    history = client.get_metric_history(reference["run_id"], "train/loss")
    _assert_same_points(sorted((metric.step, metric.value) for metric in history), _train_losses(run_dir))
    evals = read_metrics(run_dir, "eval")
    accuracy = client.get_metric_history(reference["run_id"], "eval/val_accuracy")
    _assert_same_points(
        sorted((metric.step, metric.value) for metric in accuracy),
        [(record["step"], record["val_accuracy"]) for record in evals],
    )
    summary = read_json(run_dir / "summary.json")
    assert run.data.metrics["best/val_loss"] == pytest.approx(summary["best"]["val_loss"])
    artefacts = {item.path for item in client.list_artifacts(reference["run_id"])}
    assert artefacts == {"config.toml", "summary.json", "meta.json"}
    local = client.download_artifacts(reference["run_id"], "summary.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["status"] == "completed"


def test_mlflow_marks_a_diverged_run_failed(tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    inputs, targets = make_data()
    Trainer(
        (model := make_model()),
        torch.optim.SGD(model.parameters(), lr=1e12),
        torch.nn.functional.cross_entropy,
        as_list(inputs * 1e6, targets, 16),
        epochs=2,
        run_dir=run_dir,
        progress=False,
        log_every_n_steps=1,
        checkpoint_every_epochs=None,
        loggers=["mlflow"],
    ).fit()
    meta = read_json(run_dir / "meta.json")
    assert meta["status"] == "diverged"
    run = MlflowClient(mlflow_store).get_run(meta["trackers"]["mlflow"]["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["cadence.status"] == "diverged"
    assert run.data.params["precision"] == "fp32"  # a run without a config logs its settings


def test_a_resumed_run_continues_the_same_mlflow_run(tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    from cadence.train.callback import Callback

    class StopAt(Callback):
        def __init__(self, step):
            self.step = step

        def on_step_end(self, state):
            state.should_stop = state.should_stop or state.step == self.step

    run_dir = tmp_path / "run"
    inputs, targets = make_data()

    def trainer(callbacks) -> Trainer:
        return Trainer(
            (model := make_model()),
            torch.optim.SGD(model.parameters(), lr=0.05),
            torch.nn.functional.cross_entropy,
            as_list(inputs, targets, 8),
            epochs=1,
            run_dir=run_dir,
            progress=False,
            loggers=["mlflow"],
            checkpoint_every_steps=3,
            callbacks=callbacks,
        )

    trainer([StopAt(3)]).fit()
    first = read_json(run_dir / "meta.json")["trackers"]["mlflow"]["run_id"]
    assert MlflowClient(mlflow_store).get_run(first).data.tags["cadence.status"] == "stopped"
    trainer([StopAt(None)]).fit(resume="latest")
    second = read_json(run_dir / "meta.json")["trackers"]["mlflow"]["run_id"]
    assert second == first
    run = MlflowClient(mlflow_store).get_run(first)
    assert run.data.tags["cadence.status"] == "completed"
    history = MlflowClient(mlflow_store).get_metric_history(first, "train/loss")
    assert sorted(metric.step for metric in history) == [1, 2, 3, 4, 5, 6]


# -- Weights & Biases ----------------------------------------------------------------------------------------


def _wandb_records(path: Path):
    """The records of an offline W&B run file (a LevelDB-style log of protobuf records after a header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, chunks = 7, 32768, []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        position += 7
        if kind == 0:
            break
        chunks.append(data[position : position + length])
        position += length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def _finished_wandb_records(path: Path, timeout: float = 30.0) -> list:
    """The run file's records once its exit record is there (W&B's service process writes it)."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(_wandb_records(path))
        if (
            any(record.WhichOneof("record_type") == "exit" for record in records)
            or time.monotonic() > deadline
        ):
            return records
        time.sleep(0.1)


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> Path:
    pytest.importorskip("wandb")
    home = tmp_path / "wandb-home"
    for variable, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(home),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
        "WANDB_DISABLE_GIT": "true",
        "WANDB_CONSOLE": "off",
    }.items():
        monkeypatch.setenv(variable, value)
    return home


def test_wandb_offline_run_read_back_from_its_files(tmp_path, wandb_offline):
    from cadence.tracking.loggers import WandbLogger

    run_dir = tmp_path / "run"
    logger = WandbLogger(project="cadence-tests", mode="offline", dir=tmp_path / "wandb", tags=["smoke"])
    _fit(run_dir, loggers=[logger])
    reference = read_json(run_dir / "meta.json")["trackers"]["wandb"]
    assert reference["project"] == "cadence-tests"
    assert reference["mode"] == "offline"
    (run_file,) = (tmp_path / "wandb" / "wandb").glob(f"offline-run-*-{reference['run_id']}/run-*.wandb")
    records = _finished_wandb_records(run_file)
    kinds = [record.WhichOneof("record_type") for record in records]
    assert "run" in kinds, kinds
    run_record = next(record.run for record in records if record.WhichOneof("record_type") == "run")
    assert run_record.project == "cadence-tests"
    assert run_record.display_name == "tiny"
    assert list(run_record.tags) == ["smoke"]
    config: dict = {}
    for record in records:
        if record.WhichOneof("record_type") == "config":
            config.update({_key(item): json.loads(item.value_json) for item in record.config.update})
    config.update({_key(item): json.loads(item.value_json) for item in run_record.config.update})
    assert config["train.epochs"] == 2
    assert config["schedule.name"] == "constant"
    history = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            row = {_key(item): json.loads(item.value_json) for item in record.history.item}
            if "train/loss" in row:
                history.append((row["_step"], row["train/loss"]))
    _assert_same_points(history, _train_losses(run_dir))
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
    expected = read_json(run_dir / "summary.json")
    assert summary["final/val_accuracy"] == pytest.approx(expected["final"]["val_accuracy"])
    assert summary["status"] == "completed"
    saved = {file.path for record in records if record.WhichOneof("record_type") == "files" for file in
             record.files.files}  # fmt: skip
    assert {"config.toml", "summary.json", "meta.json"} <= saved
    exit_record = next(record.exit for record in records if record.WhichOneof("record_type") == "exit")
    assert exit_record.exit_code == 0
    assert kinds[-1] in ("exit", "final", "footer", "telemetry", "summary")


# -- cadence compare: links to the tracker runs, and runs read back from MLflow ----------------------------


def _compare(*arguments: str) -> dict:
    import argparse

    from cadence.cli import compare_cmd

    parser = argparse.ArgumentParser()
    compare_cmd.add_arguments(parser)
    args = parser.parse_args([*arguments, "--no-plots", "--no-progress"])
    assert compare_cmd.run(args) == 0
    return json.loads((Path(args.out) / "results.json").read_text())


def test_compare_links_to_mlflow_runs_and_reads_them_back_from_the_store(tmp_path, mlflow_store, capsys):
    import shutil

    from cadence.tracking.loggers import MLflowLogger

    root = tmp_path / "out" / "runs" / "tiny"
    for seed in (0, 1):
        _fit(root / f"seed-{seed}", loggers=[MLflowLogger(mlflow_store, experiment="compare-me")], seed=seed)
    ids = [read_json(root / f"seed-{seed}" / "meta.json")["trackers"]["mlflow"]["run_id"] for seed in (0, 1)]
    finals = [read_json(root / f"seed-{seed}" / "summary.json")["final"]["val_accuracy"] for seed in (0, 1)]

    results = _compare("--runs", str(root.parent), "--out", str(tmp_path / "report"))
    entries = results["groups"][0]["runs"]
    assert [entry["trackers"]["mlflow"]["run_id"] for entry in entries] == ids
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Tracker runs" in markdown
    for seed, run_id in enumerate(ids):
        assert f"- tiny seed {seed}: mlflow run {run_id} (experiment compare-me, {mlflow_store})" in markdown
    assert f"mlflow run {ids[0]}" in (tmp_path / "report" / "report.html").read_text()

    shutil.rmtree(root / "seed-1")  # read from the store's artefacts and metric histories instead
    results = _compare("--mlflow-experiment", "compare-me", "--out", str(tmp_path / "from-mlflow"))
    (group,) = results["groups"]
    assert group["name"] == "tiny"
    assert [entry["seed"] for entry in group["runs"]] == [0, 1]
    assert [entry["status"] for entry in group["runs"]] == ["completed", "completed"]
    assert [entry["final"]["val_accuracy"] for entry in group["runs"]] == pytest.approx(finals)
    assert group["runs"][1]["path"] == f"runs:/{ids[1]}"
    assert group["runs"][1]["trackers"]["mlflow"]["run_id"] == ids[1]
    assert group["final"]["val_accuracy"]["n"] == 2


def test_compare_report_links_to_a_tracker_page(write_run, tmp_path):
    run_dir = write_run(tmp_path / "runs" / "a" / "seed-0", seed=0, accuracies=[0.5, 0.7])
    meta = read_json(run_dir / "meta.json")
    meta["trackers"] = {
        "wandb": {"run_id": "abc123", "project": "p", "url": "https://wandb.example/team/p/runs/abc123"},
        "mlflow": {"error": "start: ConnectionError: refused"},
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    _compare("--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    page = (tmp_path / "report" / "report.html").read_text()
    assert '<a href="https://wandb.example/team/p/runs/abc123">wandb run abc123 (project p)</a>' in page
    assert "mlflow: failed (start: ConnectionError: refused)" in page
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "- a seed 0: [wandb run abc123 (project p)](https://wandb.example/team/p/runs/abc123)" in markdown


def test_compare_mlflow_experiment_errors(tmp_path, mlflow_store):
    import argparse

    from cadence.cli import compare_cmd
    from cadence.errors import ConfigError

    parser = argparse.ArgumentParser()
    compare_cmd.add_arguments(parser)
    with pytest.raises(ConfigError, match="no such experiment"):
        compare_cmd.run(parser.parse_args(["--mlflow-experiment", "nope", "--out", str(tmp_path)]))
    with pytest.raises(ConfigError, match="only one of them"):
        compare_cmd.run(parser.parse_args(["--mlflow-experiment", "x", "--runs", str(tmp_path)]))
