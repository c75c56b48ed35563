"""`cadence find-lr CONFIG.toml`: prints the suggestions, writes JSON and plot; bad input exits with 2."""

from __future__ import annotations

import json

import pytest

from cadence.cli.main import main

pytest.importorskip("cadence.config")

CONFIG = """
[data]
name = "mnist1d"
subset = 256

[model]
name = "cnn1d"

[optimizer]
name = "sgd"
momentum = 0.9

[train]
epochs = 1
batch_size = 32
"""


@pytest.mark.slow  # loads MNIST-1D and draws the plot
def test_find_lr_command_prints_table_and_writes_files(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    output = tmp_path / "out"
    code = main(
        [
            "find-lr",
            str(config),
            "--output",
            str(output),
            "--num-steps",
            "12",
            "--repeats",
            "2",
            "--end-lr",
            "1.0",
            "--no-progress",
            "--set",
            "optimizer.momentum=0.8",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "valley" in printed
    assert "trust:" in printed
    record = json.loads((output / "lr_finder.json").read_text())
    assert record["options"]["repeats"] == 2
    assert len(record["curves"]) == 2
    assert record["config"] == str(config)
    if pytest.importorskip("matplotlib"):
        assert (output / "lr_finder.png").exists()


def test_bad_config_exits_with_code_2(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    assert main(["find-lr", str(config), "--set", "model.name=nope", "--output", str(tmp_path)]) == 2
    assert "cadence find-lr: error:" in capsys.readouterr().err
    assert main(["find-lr", str(tmp_path / "missing.toml")]) == 2
    assert main(["find-lr", str(config), "--num-steps", "1", "--output", str(tmp_path)]) == 2
    assert "num_steps" in capsys.readouterr().err
