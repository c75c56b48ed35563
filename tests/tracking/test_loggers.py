"""The Logger protocol: what a logger receives, rank 0 only, and a failing logger never hurts the run."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

from cadence.errors import ConfigError
from cadence.tracking.loggers import (
    CsvLogger,
    JsonlLogger,
    Logger,
    RunInfo,
    flatten_params,
    resolve_loggers,
    scalar_metrics,
)
from cadence.tracking.run import RunWriter, read_json, read_metrics
from cadence.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from trainer_helpers import as_list, make_data, make_model


class RecordingLogger:
    """A custom logger: keeps every call."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.run: RunInfo | None = None

    def start(self, run: RunInfo) -> dict:
        self.run = run
        return {"run_id": "rec-1", "url": "https://tracker.example/runs/rec-1"}

    def log_hparams(self, params):
        self.calls.append(("hparams", dict(params)))

    def log_metrics(self, metrics, step):
        self.calls.append(("metrics", (dict(metrics), step)))

    def finish(self, status):
        self.calls.append(("finish", status))


class BrokenLogger:
    """Raises on its second metric record."""

    name = "broken"

    def __init__(self) -> None:
        self.seen = 0

    def log_hparams(self, params):
        pass

    def log_metrics(self, metrics, step):
        self.seen += 1
        if self.seen == 2:
            raise ConnectionError("tracker unreachable")

    def finish(self, status):
        raise AssertionError("a switched-off logger is not called again")


def _trainer(tmp_path: Path, loggers, **options) -> Trainer:
    inputs, targets = make_data()
    return Trainer(
        (model := make_model()),
        torch.optim.SGD(model.parameters(), lr=0.05),
        torch.nn.functional.cross_entropy,
        as_list(inputs, targets, 16),
        eval_data=as_list(inputs, targets, 48),
        epochs=2,
        run_dir=tmp_path / "run",
        progress=False,
        log_every_n_steps=1,
        checkpoint_every_epochs=None,
        loggers=loggers,
        **options,
    )


def test_a_custom_logger_receives_hparams_every_record_and_the_status(tmp_path):
    logger = RecordingLogger()
    assert isinstance(logger, Logger)
    trainer = _trainer(tmp_path, [logger], config={"train": {"epochs": 2, "tags": ["a", "b"]}, "seed": 0})
    trainer.fit()
    kinds = [kind for kind, _ in logger.calls]
    assert kinds[0] == "hparams"
    assert kinds[-1] == "finish"
    assert logger.calls[0][1] == {"train.epochs": 2, "train.tags": '["a", "b"]', "seed": 0}
    assert logger.calls[-1][1] == "completed"
    records = [value for kind, value in logger.calls if kind == "metrics"]
    on_disk = read_metrics(tmp_path / "run")
    assert [record for record, _ in records] == on_disk  # the same records as metrics.jsonl
    assert [step for _, step in records] == [record["step"] for record in on_disk]
    assert len(on_disk) == 6 + 2  # 3 steps per epoch, one evaluation per epoch
    assert logger.run is not None
    assert logger.run.run_dir == tmp_path / "run"
    meta = read_json(tmp_path / "run" / "meta.json")
    assert meta["trackers"] == {"recording": {"run_id": "rec-1", "url": "https://tracker.example/runs/rec-1"}}


def test_a_failing_logger_warns_once_and_the_run_and_its_records_stay_complete(tmp_path):
    recording, broken = RecordingLogger(), BrokenLogger()
    trainer = _trainer(tmp_path, [broken, recording])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = trainer.fit()
    messages = [str(warning.message) for warning in caught if "logger" in str(warning.message)]
    assert len(messages) == 1
    assert "'broken'" in messages[0]
    assert "ConnectionError: tracker unreachable" in messages[0]
    assert state.step == 6
    assert trainer.status == "completed"
    on_disk = read_metrics(tmp_path / "run")
    assert len(on_disk) == 8
    assert [value[0] for kind, value in recording.calls if kind == "metrics"] == on_disk
    assert broken.seen == 2  # switched off after the failure
    meta = read_json(tmp_path / "run" / "meta.json")
    assert meta["status"] == "completed"
    assert meta["trackers"]["broken"] == {"error": "log_metrics: ConnectionError: tracker unreachable"}
    assert read_json(tmp_path / "run" / "summary.json")["status"] == "completed"


def test_a_logger_failing_at_start_is_switched_off(tmp_path):
    class FailsAtStart(RecordingLogger):
        name = "fails"

        def start(self, run):
            raise RuntimeError("no credentials")

    logger = FailsAtStart()
    with pytest.warns(RuntimeWarning, match="logger 'fails' failed in start: RuntimeError: no credentials"):
        _trainer(tmp_path, [logger]).fit()
    assert logger.calls == []
    assert len(read_metrics(tmp_path / "run")) == 8


def test_only_rank_0_logs(tmp_path):
    from types import SimpleNamespace

    from cadence.train import records

    logger = RecordingLogger()
    state = SimpleNamespace(
        run_dir=tmp_path,
        is_main_process=False,
        device="cpu",
        seed=0,
        world_size=2,
        total_steps=1,
        steps_per_epoch=1,
        accumulation_steps=1,
    )
    writer = records.open_run(
        state,
        None,
        config=None,
        csv=False,
        loggers=[logger],
        name=None,
        schedules={},
        batches_per_epoch=1,
        precision="fp32",
        grad_clip=None,
        label_smoothing=0.0,
        callbacks=[],
    )
    writer.log({"kind": "train", "step": 1, "loss": 1.0})
    writer.finish("completed")
    assert logger.calls == []
    assert not (tmp_path / "meta.json").exists()


def test_loggers_without_a_run_directory_still_log(tmp_path):
    logger = RecordingLogger()
    inputs, targets = make_data()
    trainer = Trainer(
        (model := make_model()),
        torch.optim.SGD(model.parameters(), lr=0.05),
        torch.nn.functional.cross_entropy,
        as_list(inputs, targets, 16),
        epochs=1,
        progress=False,
        loggers=[logger],
    )
    trainer.fit()
    assert logger.run is not None
    assert logger.run.run_dir is None
    assert [step for kind, (_, step) in [c for c in logger.calls if c[0] == "metrics"]] == [1, 2, 3]


def test_bad_loggers_are_refused_naming_the_field_and_the_allowed_values():
    with pytest.raises(ConfigError, match="unknown logger 'mlfow'; allowed: tensorboard, mlflow, wandb"):
        resolve_loggers(["mlfow"])
    with pytest.raises(ConfigError, match=r"loggers\[0\]: object is not a logger \(it lacks log_hparams"):
        resolve_loggers([object()])
    with pytest.raises(ConfigError, match="loggers must be a list"):
        resolve_loggers("mlflow")
    with pytest.raises(ConfigError, match="recording given twice"):
        resolve_loggers([RecordingLogger(), RecordingLogger()])


def test_scalar_metrics_and_flatten_params():
    record = {"kind": "train", "step": 3, "epoch": 0.5, "lr": 0.1, "loss": 2.0, "skipped": True,
              "lr_groups": [0.1, 0.2], "time": 1.5}  # fmt: skip
    assert scalar_metrics(record) == {"train/epoch": 0.5, "train/lr": 0.1, "train/loss": 2.0}
    evaluation = {"kind": "eval", "step": 3, "val_accuracy": 0.75, "val_loss": float("nan")}
    assert scalar_metrics(evaluation) == {"eval/val_accuracy": 0.75}
    assert flatten_params({"a": {"b": 1, "c": None}, "d": [1, 2], "e": "x"}) == {
        "a.b": 1,
        "a.c": "None",
        "d": "[1, 2]",
        "e": "x",
    }


def test_the_run_records_are_loggers_too(tmp_path):
    jsonl, table = JsonlLogger(tmp_path / "metrics.jsonl"), CsvLogger(tmp_path)
    for logger in (jsonl, table):
        assert isinstance(logger, Logger)
        logger.log_metrics({"kind": "train", "step": 1, "loss": 0.5}, 1)
        logger.finish("completed")
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"kind": "train", "step": 1, "loss": 0.5}
    assert (tmp_path / "train.csv").read_text().splitlines() == ["step,loss", "1,0.5"]


def test_csv_and_a_logger_agree_after_a_resume(tmp_path):
    writer = RunWriter(tmp_path, csv=True)
    writer.start({"seed": 0})
    for step in range(1, 5):
        writer.log({"kind": "train", "step": step, "loss": 1.0 / step})
    writer.finish("failed")
    logger = RecordingLogger()
    resumed = RunWriter(tmp_path, csv=True, loggers=[logger])
    resumed.start({"seed": 0}, keep_lines=2)
    resumed.log({"kind": "train", "step": 3, "loss": 0.3})
    resumed.finish("completed")
    assert [record["step"] for record in read_metrics(tmp_path)] == [1, 2, 3]
    assert (tmp_path / "train.csv").read_text().splitlines()[1:] == ["1,1.0", "2,0.5", "3,0.3"]
    assert [kind for kind, _ in logger.calls] == ["hparams", "metrics", "finish"]


@pytest.mark.parametrize(
    ("name", "extra"), [("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "tensorboard")]
)
def test_a_missing_tracker_package_names_the_extra_to_install(monkeypatch, name, extra):
    import importlib.util

    from cadence.errors import MissingDependencyError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda module, *a: None if module == name else real(module)
    )
    with pytest.raises(MissingDependencyError, match=rf"pip install 'cadence\[{extra}\]'"):
        resolve_loggers([name])
