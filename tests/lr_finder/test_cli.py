"""`cadence find-lr CONFIG.toml`: the value a run of the config uses, and why; bad input exits with 2."""

from __future__ import annotations

import json

import pytest

from cadence.cli.main import main

CONFIG = """
[data]
name = "mnist1d"
subset = 256

[model]
name = "cnn1d"

[optimizer]
name = "sgd"
momentum = 0.9

[schedule.lr]
name = "one_cycle"
max_lr = "auto"

[lr_selection]
num_steps = 20
end_lr = 1.0
candidates = 3

[train]
epochs = 2
batch_size = 32
"""


@pytest.mark.slow  # a range test, a race and a short run
def test_find_lr_and_auto_in_training_agree(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    output = tmp_path / "out"
    assert main(["find-lr", str(config), "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    found = json.loads((output / "lr_selection.json").read_text())
    assert f"a run of this config uses max_lr = {found['value']:.4g}" in printed
    assert found["method"] == "race"
    assert found["config"] == str(config)
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run_dir), "--set", "train.progress=false"]) in (0, 1)
    trained = json.loads((run_dir / "lr_selection.json").read_text())
    assert trained["value"] == found["value"]  # one path: the same sweep, race, data order and seed
    assert trained["entries"] == found["entries"]


@pytest.mark.slow
def test_find_lr_options_override_the_config(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.replace('max_lr = "auto"', "max_lr = 0.1"))
    output = tmp_path / "out"
    code = main(["find-lr", str(config), "--output", str(output), "--method", "sweep", "--rule", "minimum"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "the config gives max_lr = 0.1" in printed
    record = json.loads((output / "lr_selection.json").read_text())
    assert record["method"] == "sweep"
    assert record["entries"] == []
    assert record["value"] == pytest.approx(record["sweep"]["suggestions"]["minimum"])


def test_bad_config_exits_with_code_2(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    assert main(["find-lr", str(config), "--set", "model.name=nope", "--output", str(tmp_path)]) == 2
    assert "cadence find-lr: error:" in capsys.readouterr().err
    assert main(["find-lr", str(tmp_path / "missing.toml")]) == 2
    assert main(["find-lr", str(config), "--budget", "0", "--output", str(tmp_path)]) == 2
    assert "lr_selection.budget" in capsys.readouterr().err
    assert main(["find-lr", str(config), "--set", "lr_selection.methd=race", "--output", str(tmp_path)]) == 2
    assert "did you mean 'method'" in capsys.readouterr().err
