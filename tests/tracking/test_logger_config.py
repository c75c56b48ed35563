"""``[train] loggers`` and ``[loggers.<name>]``: validated, described, passed to the Trainer, and left out of
the fingerprint."""

from __future__ import annotations

import pytest

from cadence.config import apply_overrides, build_experiment, parse_config, validate_config
from cadence.config.describe import config_reference, logger_defaults
from cadence.config.fingerprint import config_fingerprint
from cadence.config.schema import LOGGER_KEYS
from cadence.errors import ConfigError
from cadence.tracking.run import read_json

CONFIG = """
[data]
name = "synthetic"
num_train = 32
num_test = 16
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[schedule]
name = "constant"
value = 0.1

[train]
epochs = 2
batch_size = 16
progress = "off"
device = "cpu"
"""


def _config(*overrides: str) -> dict:
    return apply_overrides(parse_config(CONFIG), list(overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ['train.loggers=["mlfow"]'],
            r"train.loggers = .*mlfow.*: "
            r'expected a list of logger names from "tensorboard", "mlflow", "wandb"',
        ),
        (['train.loggers="mlflow"'], 'train.loggers = "mlflow": expected a list of logger names'),
        (['train.loggers=["wandb", "wandb"]'], "each at most once"),
        (
            ['loggers.mlflow.experiment="x"'],
            r"\[loggers.mlflow\] is given but train.loggers does not list 'mlflow'",
        ),
        (
            ['train.loggers=["mlflow"]', 'loggers.mlflow.experimnt="x"'],
            r"unknown key loggers.mlflow.experimnt \(did you mean 'experiment'\?\); valid keys: tracking_uri",
        ),
        (
            ['train.loggers=["wandb"]', 'loggers.wandb.mode="cloud"'],
            'loggers.wandb.mode = "cloud": expected one of "online", "offline", "disabled"',
        ),
        (['loggers.neptune.project="x"'], r"unknown logger \[loggers.neptune\]; valid loggers: tensorboard"),
    ],
)
def test_bad_logger_settings_name_the_field_and_the_allowed_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_config(*overrides))


def test_loggers_do_not_change_the_fingerprint():
    plain = config_fingerprint(_config())["values"]
    tracked = config_fingerprint(
        _config('train.loggers=["tensorboard", "mlflow"]', 'loggers.mlflow.experiment="other"')
    )["values"]
    assert tracked == plain


def test_the_reference_lists_every_logger_key_with_its_default():
    text = config_reference("loggers")
    lines = text.splitlines()
    for name, keys in LOGGER_KEYS.items():
        assert f"[loggers.{name}]" in text
        assert f"pip install 'cadence[{name}]'" in text
        block = lines[next(i for i, line in enumerate(lines) if f"[loggers.{name}]" in line) :]
        for key in keys:
            line = next(line for line in block if line.split() and line.split()[0] == key)
            default = logger_defaults(name)[key]
            assert "default " in line, line
            if default is None:
                assert line.endswith("default unset"), line
    assert logger_defaults("mlflow")["experiment"] == "cadence"
    assert "loggers" in config_reference("train")


def test_a_config_run_logs_to_mlflow_and_tensorboard_with_the_tables_options(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from mlflow.tracking import MlflowClient

    from cadence.config.run import run_config, trainer_for
    from cadence.tracking.loggers import MLflowLogger, TensorBoardLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = "file://" + str(tmp_path / "mlruns")
    config = _config(
        'train.loggers=["tensorboard", "mlflow"]',
        f'loggers.mlflow.tracking_uri="{store}"',
        'loggers.mlflow.experiment="from-toml"',
        'loggers.mlflow.tags={team = "schedules"}',
    )
    trainer = trainer_for(build_experiment(config))
    assert [type(logger) for logger in trainer.loggers] == [TensorBoardLogger, MLflowLogger]
    assert trainer.loggers[1].experiment == "from-toml"
    run_config(config, tmp_path / "run")
    trackers = read_json(tmp_path / "run" / "meta.json")["trackers"]
    assert set(trackers) == {"tensorboard", "mlflow"}
    run = MlflowClient(store).get_run(trackers["mlflow"]["run_id"])
    assert run.data.tags["team"] == "schedules"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["data.name"] == "synthetic"
    assert run.info.status == "FINISHED"
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
