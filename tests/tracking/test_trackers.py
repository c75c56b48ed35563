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
