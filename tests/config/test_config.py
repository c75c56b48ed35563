from pathlib import Path

import pytest
import torch

from cadence.config import (
    apply_overrides,
    build_experiment,
    epochs_to_steps,
    load_config,
    parse_config,
    validate_config,
)
from cadence.errors import ConfigError

REPOSITORY = Path(__file__).resolve().parents[2]

TINY = """
[data]
name = "synthetic"
num_train = 96
num_test = 32
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[optimizer]
name = "sgd"
momentum = 0.9

[schedule]
name = "one_cycle"
max_lr = 0.1

[train]
epochs = 2
batch_size = 16
progress = "off"
device = "cpu"
"""


def tiny(*overrides: str) -> dict:
    config = apply_overrides(parse_config(TINY), overrides)
    validate_config(config)
    return config


def test_overrides_parse_toml_literals():
    config = apply_overrides(
        parse_config(TINY),
        [
            "train.epochs=5",
            "model.name=cnn1d",
            'data.name="mnist1d"',
            "model.hidden_sizes=[4, 4]",
            "callbacks.ema.decay=0.99",
            "train.compile=false",
        ],
    )
    assert config["train"]["epochs"] == 5
    assert config["model"] == {"name": "cnn1d", "hidden_sizes": [4, 4]}
    assert config["data"]["name"] == "mnist1d"
    assert config["callbacks"] == {"ema": {"decay": 0.99}}
    assert config["train"]["compile"] is False
    assert parse_config(TINY)["train"]["epochs"] == 2  # the original is not modified


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nosection.key=1", "unknown section 'nosection'"),
        ("epochs=3", "section.key=value"),
        ("train.epochs", "section.key=value"),
        ("trian.epochs=3", "did you mean 'train'"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(parse_config(TINY), [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", r"unknown key train.epoch \(did you mean 'epochs'\?\); valid keys: epochs"),
        ("train.epochs=0", "train.epochs = 0: expected a whole number >= 1"),
        ("train.precision=fp8", 'expected one of "fp32", "bf16", "fp16"'),
        ("train.label_smoothing=1.5", r"a number in \[0, 1\)"),
        ("train.total_steps=10", "exactly one of epochs or total_steps"),
        ("callbacks.swaa.start=0.5", r"unknown callback \[callbacks.swaa\] \(did you mean 'swa'\?\)"),
        ("distributed.lr_scaling=cubic", 'expected one of "none", "linear", "sqrt"'),
        ("distributed.base_batch=256", "did you mean 'base_batch_size'"),
        ("distributed.timeout_s=0", "distributed.timeout_s = 0: expected a number > 0"),
        ('distributed.timeout_s="1h"', 'distributed.timeout_s = "1h": expected a number > 0'),
        ("train.log_every_n_steps=0", "train.log_every_n_steps = 0: expected a whole number >= 1"),
        ("data.augment.rotate=3", "unknown key data.augment.rotate; valid keys: crop_padding"),
        ("data.drop_last=1", "data.drop_last = 1: expected true or false"),
    ],
)
def test_structural_errors_name_key_and_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        tiny(override)


def test_missing_sections():
    with pytest.raises(ConfigError, match=r"needs a \[model\] section"):
        validate_config({"data": {"name": "synthetic"}, "train": {"epochs": 1}})
    with pytest.raises(ConfigError, match="unknown section"):
        validate_config({**tiny(), "extra": {}})


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[data\nname = 1")
    with pytest.raises(ConfigError, match=r"broken.toml: invalid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.name=mnist1dd", r"\[data\] unknown dataset 'mnist1dd' \(did you mean 'mnist1d'\?\)"),
        ("data.num_trian=5", r"\[data\] unknown option 'num_trian'.*did you mean 'num_train'"),
        ("model.name=mlpp", r"\[model\] unknown model 'mlpp' \(did you mean 'mlp'\?\)"),
        ("optimizer.momentun=0.9", r"\[optimizer\].*did you mean 'momentum'"),
        ("schedule.max_lrr=0.1", r"\[schedule\] unknown key schedule.max_lrr \(did you mean 'max_lr'\?\)"),
        ("schedule.name=one_cycel", r"did you mean 'one_cycle'"),
        ("schedule.total_epochs=-1", "expected a number of epochs >= 0"),
    ],
)
def test_build_errors_name_key_and_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        build_experiment(tiny(override))


def test_epochs_to_steps():
    valid = ["name", "max_lr", "total_steps", "step_size_up", "cycle_steps", "steps", "boundaries"]
    converted = epochs_to_steps(
        {"total_epochs": 2.5, "step_size_up_epochs": 2, "cycle_epochs": 1, "max_lr": 0.1},
        valid,
        10,
        "schedule",
    )
    assert converted == {"total_steps": 25, "step_size_up": 20, "cycle_steps": 10, "max_lr": 0.1}
    assert epochs_to_steps({"epochs": 3, "boundaries_epochs": [1, 2]}, valid, 7, "s") == {
        "steps": 21,
        "boundaries": [7, 14],
    }
    with pytest.raises(ConfigError, match="give total_epochs or total_steps"):
        epochs_to_steps({"total_epochs": 1, "total_steps": 3}, valid, 10, "schedule")
    with pytest.raises(ConfigError, match=r"unknown key schedule\.warm_epochs"):
        epochs_to_steps({"warm_epochs": 1}, valid, 10, "schedule")


def test_build_experiment_fills_lengths_and_shapes():
    experiment = build_experiment(tiny())
    assert experiment.steps_per_epoch == 6
    assert experiment.total_steps == 12
    assert experiment.schedules["lr"].total_steps == 12  # defaults to the run's length
    assert experiment.model(torch.randn(2, 8)).shape == (2, 4)  # num_classes/input_shape from the data
    assert len(experiment.train_loader) == 6
    assert experiment.trainer_options["epochs"] == 2
    assert experiment.trainer_options["num_classes"] == 4


def test_build_experiment_schedule_tables_and_epochs():
    config = tiny("train.accumulation_steps=2")
    config["schedule"] = {
        "lr": {"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up_epochs": 1},
        "momentum": {"name": "one_cycle_momentum"},
    }
    experiment = build_experiment(config)
    assert experiment.steps_per_epoch == 3  # ceil(6 batches / 2 accumulation steps)
    assert experiment.schedules["lr"].step_size_up == 3
    assert experiment.schedules["momentum"].total_steps == 6


def test_build_experiment_callbacks():
    config = tiny("callbacks.early_stopping.patience=2", "callbacks.ema.enabled=false")
    experiment = build_experiment(config)
    assert [type(callback).__name__ for callback in experiment.callbacks] == ["EarlyStopping"]
    with pytest.raises(ConfigError, match=r"unknown key callbacks.early_stopping.patient \(did you mean"):
        build_experiment(tiny("callbacks.early_stopping.patient=2"))


def test_same_seed_same_model():
    first, second = build_experiment(tiny()), build_experiment(tiny())
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "name", ["mnist1d_cnn_one_cycle.toml", "fashion_cnn28_no_clr.toml", "fashion_cnn28_triangular2.toml"]
)
def test_shipped_configs_are_valid(name):
    config = load_config(REPOSITORY / "configs" / name)
    assert config["train"]["epochs"] >= 1


def test_fashion_triangular2_matches_the_tutorial():
    config = load_config(REPOSITORY / "configs" / "fashion_cnn28_triangular2.toml")
    assert config["schedule"] == {
        "name": "cyclic",
        "base_lr": 1e-4,
        "max_lr": 1e-2,
        "mode": "triangular2",
        "step_size_up_epochs": 2,
    }
    assert (config["train"]["batch_size"], config["train"]["epochs"]) == (64, 10)
    # 60000 images / batch 64 -> 938 steps per epoch -> a 2-epoch half cycle is 1876 steps
    valid = ["name", "base_lr", "max_lr", "mode", "step_size_up"]
    converted = epochs_to_steps(config["schedule"], valid, 938, "s")
    assert converted["step_size_up"] == 1876


def test_distributed_lr_scaling_scales_the_schedule():
    config = tiny(
        "distributed.lr_scaling=linear", "distributed.base_batch_size=8", "distributed.warmup_steps=2"
    )
    experiment = build_experiment(config)
    assert experiment.lr_scaling.factor == 2.0  # batch 16 on one process vs base batch 8
    lr = experiment.schedules["lr"]
    peak = max(lr(step) for step in range(experiment.total_steps))
    assert peak == pytest.approx(0.2, rel=0.02)  # max_lr 0.1 scaled by 2
    assert build_experiment(tiny("distributed.lr_scaling=none")).lr_scaling is None


def test_a_warmup_without_lr_scaling_is_still_applied():
    experiment = build_experiment(tiny("distributed.lr_scaling=none", "distributed.warmup_steps=4"))
    plan = experiment.lr_scaling
    assert plan is not None
    assert (plan.factor, plan.warmup_steps) == (1.0, 4)
    lr = experiment.schedules["lr"]
    unwarmed = build_experiment(tiny()).schedules["lr"]
    assert lr(0) < unwarmed(0)  # ramps up from 0 over the first 4 steps
    assert lr(10) == pytest.approx(unwarmed(10))  # and then follows the configured schedule


def test_freezeout_config_gets_one_optimizer_group_per_layer_group():
    from cadence.callbacks.freezeout import FreezeOut
    from cadence.transfer.param_groups import layer_groups

    config = tiny("callbacks.freezeout.t0=0.5", "data.input_shape=[40]")
    config["model"] = {"name": "cnn1d"}  # four top-level layers: four layer groups
    experiment = build_experiment(config)
    groups = layer_groups(experiment.model)
    assert len(experiment.optimizer.param_groups) == len(groups) > 1
    for param_group, layer_group in zip(experiment.optimizer.param_groups, groups):
        assert [id(p) for p in param_group["params"]] == [id(p) for p in layer_group.params]
    assert [type(c) for c in experiment.callbacks] == [FreezeOut]


def test_log_every_n_steps_and_timeout_reach_the_trainer():
    from cadence.config import build_trainer

    trainer = build_trainer(tiny("train.log_every_n_steps=7", "distributed.timeout_s=30"))
    assert trainer.log_every_n_steps == 7
