"""`cadence compare` reruns a finished seed whose fingerprint changed, and says why."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from cadence.cli import compare_cmd
from cadence.config.fingerprint import expected_fingerprint
from cadence.tracking.compare import stale_run

CONFIG = """
[data]
name = "synthetic"
num_train = 48
num_test = 16
input_shape = [6]

[model]
name = "mlp"
hidden_sizes = [8]

[optimizer]
name = "sgd"

[train]
epochs = 1
batch_size = 16
progress = "off"
device = "cpu"
"""


class FinishedProcess:
    def poll(self) -> int:
        return 0


def _args(**values) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    compare_cmd.add_arguments(parser)
    namespace = parser.parse_args([])
    for key, value in values.items():
        setattr(namespace, key, value)
    return namespace


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "base.toml"
    path.write_text(CONFIG)
    return path


def _launcher(write_run, launched: list[tuple[str, int]]):
    """Writes the run `cadence train` would: a completed run with the job's fingerprint."""

    def launch(job: compare_cmd.RunJob, threads: int) -> FinishedProcess:
        launched.append((job.name, job.seed))
        write_run(job.run_dir, seed=job.seed, accuracies=[0.5, 0.9])
        meta = json.loads((job.run_dir / "meta.json").read_text())
        meta["fingerprint"] = expected_fingerprint(job.config, (f"train.seed={job.seed}", *job.overrides))
        (job.run_dir / "meta.json").write_text(json.dumps(meta))
        return FinishedProcess()

    return launch


def test_an_edited_config_or_another_set_reruns_the_seeds(config, write_run, tmp_path, capsys):
    out = tmp_path / "out"
    launched: list[tuple[str, int]] = []
    args = _args(configs=[str(config)], seeds=2, out=str(out), no_plots=True)
    assert compare_cmd.run(args, launcher=_launcher(write_run, launched)) == 0
    assert launched == [("base", 0), ("base", 1)]
    capsys.readouterr()

    assert compare_cmd.run(args, launcher=_launcher(write_run, launched)) == 0  # unchanged: skipped
    assert launched == [("base", 0), ("base", 1)]
    assert "0 ran (0 failed), 2 skipped" in capsys.readouterr().out

    config.write_text(CONFIG.replace("epochs = 1", "epochs = 2"))
    assert compare_cmd.run(args, launcher=_launcher(write_run, launched)) == 0
    printed = capsys.readouterr().out
    assert launched[2:] == [("base", 0), ("base", 1)]
    assert "[rerun] base seed 0: its fingerprint changed (train.epochs: 1 -> 2)" in printed
    assert "2 ran (0 failed), 0 skipped" in printed

    args.overrides = ["optimizer.momentum=0.5"]
    assert compare_cmd.run(args, launcher=_launcher(write_run, launched)) == 0
    printed = capsys.readouterr().out
    assert "[rerun] base seed 1: its fingerprint changed (optimizer.momentum: 0 -> 0.5)" in printed
    assert "2 ran (0 failed), 0 skipped" in printed


def test_a_changed_or_missing_data_file_makes_a_run_stale(config, write_run, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"version 1")
    run_dir = write_run(tmp_path / "run", seed=0, accuracies=[0.9])
    from cadence.config import load_config
    from cadence.config.fingerprint import config_fingerprint
    from cadence.data.files import describe_files

    overrides = ("train.seed=0",)
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["fingerprint"] = config_fingerprint(
        load_config(config, overrides), overrides, describe_files({"data.bin": data})
    )
    (run_dir / "meta.json").write_text(json.dumps(meta))
    assert stale_run(run_dir, lambda: expected_fingerprint(config, overrides)) is None
    data.write_bytes(b"version 2, longer")
    assert (
        stale_run(run_dir, lambda: expected_fingerprint(config, overrides))
        == f"its data file {str(data.resolve())!r} changed (SHA-256 differs)"
    )
    data.unlink()
    assert (
        stale_run(run_dir, lambda: expected_fingerprint(config, overrides))
        == f"its data file {str(data.resolve())!r} is gone"
    )


def test_an_interrupted_run_of_other_settings_starts_afresh(config, write_run, tmp_path, capsys):
    out = tmp_path / "out"
    interrupted = out / "runs" / "base" / "seed-0"
    write_run(interrupted, seed=0, accuracies=[0.5], status="running", write_summary=False)
    meta = json.loads((interrupted / "meta.json").read_text())
    meta["fingerprint"] = expected_fingerprint(config, ("train.seed=0", "train.epochs=3"))
    (interrupted / "meta.json").write_text(json.dumps(meta))
    (interrupted / "checkpoints").mkdir()
    (interrupted / "checkpoints" / "step-00000010.pt").write_bytes(b"")
    commands: list[list[str]] = []

    def launch(job: compare_cmd.RunJob, threads: int) -> FinishedProcess:
        commands.append(job.command())
        write_run(job.run_dir, seed=job.seed, accuracies=[0.5, 0.9])
        return FinishedProcess()

    args = _args(configs=[str(config)], seeds=1, out=str(out), no_plots=True)
    assert compare_cmd.run(args, launcher=launch) == 0
    assert "--resume" not in commands[0]
    assert "[restart] base seed 0: its fingerprint changed (train.epochs: 3 -> 1)" in capsys.readouterr().out


def test_an_interrupted_run_without_a_fingerprint_starts_afresh(config, write_run, tmp_path, capsys):
    out = tmp_path / "out"
    interrupted = out / "runs" / "base" / "seed-0"
    write_run(interrupted, seed=0, accuracies=[0.5], status="running", write_summary=False)
    (interrupted / "checkpoints").mkdir()
    (interrupted / "checkpoints" / "step-00000010.pt").write_bytes(b"")
    commands: list[list[str]] = []

    def launch(job: compare_cmd.RunJob, threads: int) -> FinishedProcess:
        commands.append(job.command())
        write_run(job.run_dir, seed=job.seed, accuracies=[0.5, 0.9])
        return FinishedProcess()

    args = _args(configs=[str(config)], seeds=1, out=str(out), no_plots=True)
    assert compare_cmd.run(args, launcher=launch) == 0
    assert "--resume" not in commands[0]  # `cadence train --resume` would refuse a run it cannot check
    printed = capsys.readouterr().out
    assert "[restart] base seed 0: it has no fingerprint (recorded by an older cadence)" in printed


@pytest.mark.slow
def test_end_to_end_an_edited_config_is_run_again(config, tmp_path, capsys):
    out = tmp_path / "out"
    args = _args(configs=[str(config)], seeds=1, out=str(out), no_plots=True)
    assert compare_cmd.run(args) == 0
    assert "1 ran (0 failed), 0 skipped" in capsys.readouterr().out
    config.write_text(CONFIG.replace("epochs = 1", "epochs = 2"))
    assert compare_cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert "[rerun] base seed 0: its fingerprint changed (train.epochs: 1 -> 2)" in printed
    assert "1 ran (0 failed), 0 skipped" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["groups"][0]["runs"][0]["steps"] == 6  # 2 epochs of 3 steps, not the old 3
    assert sys.executable  # the runs are real `python -m cadence train` processes


def test_a_key_added_by_a_later_version_at_its_old_behaviour_is_not_a_change():
    from cadence.tracking.fingerprint import fingerprint_differences, make_fingerprint

    older = make_fingerprint({"train.seed": 0, "train.epochs": 3})  # recorded before tf32 existed
    newer = make_fingerprint(
        {"train.seed": 0, "train.epochs": 3, "train.tf32": False, "train.cudnn_benchmark": False}
    )
    assert fingerprint_differences(older, newer) == []
    assert fingerprint_differences(newer, older) == []
    turned_on = make_fingerprint({"train.seed": 0, "train.epochs": 3, "train.tf32": True})
    assert fingerprint_differences(older, turned_on) == ["train.tf32"]


def test_stale_run_asks_for_the_expected_fingerprint_only_when_the_run_recorded_one(write_run, tmp_path):
    run_dir = write_run(tmp_path / "run", seed=0, accuracies=[0.9])
    meta = json.loads((run_dir / "meta.json").read_text())
    meta.pop("fingerprint", None)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    calls: list[int] = []

    def expected() -> dict:
        calls.append(1)
        return {}

    assert stale_run(run_dir, expected) is None
    assert stale_run(run_dir, expected, require_fingerprint=True) == (
        "it has no fingerprint (recorded by an older cadence)"
    )
    assert calls == []
