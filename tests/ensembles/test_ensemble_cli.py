"""`cadence train` with [callbacks.snapshot_ensemble] / [callbacks.swa], then `cadence ensemble RUN_DIR`."""

import json

import pytest
import torch

from cadence.cli.main import main

CONFIG = """
[data]
name = "synthetic"
num_train = 96
num_test = 40
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[optimizer]
name = "sgd"
momentum = 0.9

[schedule]
name = "snapshot_cosine"
max_lr = 0.2
num_snapshots = 3

[train]
epochs = 3
batch_size = 16
progress = "off"
device = "cpu"

[callbacks.snapshot_ensemble]

[callbacks.swa]
start = 0.5
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ensemble_cli")
    config = directory / "snapshots.toml"
    config.write_text(CONFIG)
    run_dir = directory / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(config), "--run-dir", str(run_dir)]) == 0
    finally:
        torch.set_num_threads(threads)
    return run_dir


def test_snapshots_from_a_config_run_follow_the_schedule(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    extra = summary["extra"]["snapshot_ensemble"]
    # 3 epochs of 6 steps, 3 cycles of 6 steps: ends 5, 11, 17.
    assert extra["steps"] == [5, 11, 17]
    assert extra["count"] == 3
    assert summary["extra"]["swa"]["n_averaged"] == 9
    assert (trained_run / "swa_model.pt").is_file()


def test_ensemble_command_prints_and_writes_the_table(trained_run, capsys):
    assert main(["ensemble", str(trained_run), "--k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "snapshot-1" in printed
    assert "ensemble of 3 (mean_prob)" in printed
    assert "greedy 2 on val" in printed
    assert "swa_model (1 model)" in printed
    report = json.loads((trained_run / "ensemble.json").read_text())
    assert len(report["members"]) == 3
    assert len(report["selected"]) == 2
    assert report["val_examples"] + report["test_examples"] == 40
    assert set(report["ensemble"]) == {"val", "test"}
    assert (trained_run / "ensemble.md").read_text().startswith("# Snapshot ensemble")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--k", "9"], "--k must be between 1 and the number of snapshots"),
        (["--val-fraction", "1.5"], "--val-fraction"),
    ],
)
def test_bad_arguments_exit_2(trained_run, capsys, arguments, message):
    assert main(["ensemble", str(trained_run), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_missing_run_and_missing_snapshots_exit_2(tmp_path, capsys):
    assert main(["ensemble", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "config.toml").write_text(CONFIG)
    assert main(["ensemble", str(tmp_path)]) == 2
    assert "no snapshots" in capsys.readouterr().err
    (tmp_path / "config.toml").unlink()
    assert main(["ensemble", str(tmp_path)]) == 2
    assert "no config.toml" in capsys.readouterr().err
