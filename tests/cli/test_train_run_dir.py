"""`cadence train` never reuses a run directory silently: fingerprints, --resume, --overwrite, disk full."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from cadence.cli.main import main
from cadence.train import checkpoint as checkpoints

TINY = """
[data]
name = "synthetic"
num_train = 64
num_test = 16
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [8]

[optimizer]
name = "sgd"
momentum = 0.9

[schedule]
name = "one_cycle"
max_lr = 0.2
total_epochs = 2

[train]
epochs = 2
batch_size = 16
progress = "off"
device = "cpu"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _train(config_path: Path, run_dir: Path, *extra: str) -> int:
    return main(["train", str(config_path), "--run-dir", str(run_dir), *extra])


def _one_error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "Traceback" not in error
    assert error.startswith("cadence train: error: ")
    return error.removeprefix("cadence train: error: ").rstrip("\n")


def test_the_run_records_its_fingerprint(config_path, tmp_path):
    run_dir = tmp_path / "run"
    assert _train(config_path, run_dir, "--set", "train.seed=4", "--set", "optimizer.weight_decay=0.01") == 0
    fingerprint = json.loads((run_dir / "meta.json").read_text())["fingerprint"]
    values = fingerprint["values"]
    assert values["train.seed"] == 4
    assert values["optimizer.weight_decay"] == 0.01
    assert values["train.batch_size"] == 16
    assert values["train.eval_batch_size"] == 1024  # defaults are resolved
    assert values["optimizer.nesterov"] is False
    assert values["cadence_version"] == __import__("cadence").__version__
    assert "train.progress" not in values  # display settings do not change the result
    assert fingerprint["overrides"] == ["train.seed=4", "optimizer.weight_decay=0.01"]
    assert len(fingerprint["digest"]) == 64


def test_a_new_run_into_a_non_empty_run_dir_is_refused_unless_overwrite(config_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(config_path, run_dir, "--set", "train.epochs=3", "--set", "schedule.total_epochs=3") == 0
    assert checkpoints.latest_checkpoint(run_dir / "checkpoints").name == "step-00000012.pt"
    capsys.readouterr()
    assert _train(config_path, run_dir) == 2
    assert _one_error_line(capsys) == (
        f"run directory {str(run_dir)!r} is not empty; use --resume to continue the run in it or "
        "--overwrite to replace it"
    )
    assert _train(config_path, run_dir, "--overwrite") == 0
    names = [path.name for path in checkpoints.list_checkpoints(run_dir / "checkpoints")]
    assert names == ["step-00000004.pt", "step-00000008.pt"]  # the 3-epoch run's checkpoints are gone
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 8


def test_overwrite_never_deletes_a_directory_that_holds_no_run(config_path, tmp_path, capsys):
    run_dir = tmp_path / "notes"
    run_dir.mkdir()
    (run_dir / "thesis.tex").write_text("keep me")
    assert _train(config_path, run_dir, "--overwrite") == 2
    assert "holds files but no cadence run" in _one_error_line(capsys)
    assert (run_dir / "thesis.tex").read_text() == "keep me"


@pytest.mark.parametrize("problem", ["missing", "no checkpoint"])
def test_resume_of_a_missing_run_is_an_error(config_path, tmp_path, capsys, problem):
    run_dir = tmp_path / "rnu"  # mistyped
    if problem == "no checkpoint":
        run_dir.mkdir()
    assert _train(config_path, run_dir, "--resume") == 2
    message = _one_error_line(capsys)
    if problem == "missing":
        assert message.startswith(f"--resume: no run directory {str(run_dir)!r}")
        assert not run_dir.exists()
    else:
        assert message.startswith(f"--resume: {str(run_dir)!r} holds no checkpoint to continue from")


def test_resume_says_where_it_resumes_from(config_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(config_path, run_dir, "--set", "train.seed=2") == 0
    capsys.readouterr()
    assert _train(config_path, run_dir, "--set", "train.seed=2", "--resume") == 0
    latest = checkpoints.latest_checkpoint(run_dir / "checkpoints")
    assert f"cadence train: resumed from step 8 (checkpoint {latest})\n" in capsys.readouterr().out


def test_resume_with_other_settings_is_refused_listing_them(config_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(config_path, run_dir) == 0
    meta_before = (run_dir / "meta.json").read_text()
    capsys.readouterr()
    changed = [
        "--set",
        "train.seed=1",
        "--set",
        "schedule.max_lr=0.3",
        "--set",
        "optimizer.weight_decay=0.01",
    ]
    assert _train(config_path, run_dir, "--resume", *changed) == 2
    assert _one_error_line(capsys) == (
        f"--resume: the settings differ from the run in {str(run_dir)!r}: optimizer.weight_decay: 0 -> 0.01, "
        "schedule.max_lr: 0.2 -> 0.3, train.seed: 0 -> 1; resume with the same config and --set values, or "
        "pass --allow-changes to continue with the new ones"
    )
    assert (run_dir / "meta.json").read_text() == meta_before  # nothing rewritten
    assert _train(config_path, run_dir, "--resume", "--allow-changes", *changed) == 0
    assert json.loads((run_dir / "meta.json").read_text())["fingerprint"]["values"]["train.seed"] == 1


def test_a_corrupt_latest_checkpoint_is_reported_and_skipped(config_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert _train(config_path, run_dir, "--set", "train.checkpoint_every_steps=3") == 0
    found = checkpoints.list_checkpoints(run_dir / "checkpoints")
    assert [path.name for path in found] == ["step-00000006.pt", "step-00000008.pt"]
    found[-1].write_bytes(found[-1].read_bytes()[:100])
    capsys.readouterr()
    assert _train(config_path, run_dir, "--set", "train.checkpoint_every_steps=3", "--resume") == 0
    output = capsys.readouterr().out
    assert f"cadence train: checkpoint {str(found[-1])!r} is corrupt or not a checkpoint (" in output
    assert f"cadence train: resumed from step 6 (checkpoint {found[0]})" in output


def test_disk_full_while_writing_a_checkpoint_is_one_line_and_keeps_the_previous_one(
    config_path, tmp_path, capsys, monkeypatch
):
    real_save = torch.save
    calls = {"count": 0}

    def full_on_second(obj, file, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_on_second)
    run_dir = tmp_path / "run"
    assert _train(config_path, run_dir, "--set", "train.checkpoint_every_steps=2") == 2
    message = _one_error_line(capsys)
    first = checkpoints.checkpoint_path(run_dir / "checkpoints", 2)
    assert message.startswith("could not write checkpoint ")
    assert message.endswith(
        f"the disk is full ([Errno 28] No space left on device); the previous checkpoint "
        f"{str(first)!r} is intact"
    )
    assert checkpoints.load_checkpoint(first)["trainer"]["step"] == 2
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "failed"


def test_resume_and_overwrite_exclude_each_other(config_path, tmp_path, capsys):
    assert _train(config_path, tmp_path / "run", "--resume", "--overwrite") == 2
    assert _one_error_line(capsys) == (
        "--resume and --overwrite exclude each other: continue the run or replace it"
    )


def test_nproc_checks_the_run_dir_before_starting_processes(config_path, tmp_path, capsys, monkeypatch):
    import cadence.distributed

    calls = []
    monkeypatch.setattr(cadence.distributed, "launch_local", lambda nproc, argv: calls.append(argv) or 0)
    missing = tmp_path / "missing"
    assert _train(config_path, missing, "--nproc", "2", "--resume") == 2
    assert _one_error_line(capsys).startswith(f"--resume: no run directory {str(missing)!r}")
    old = tmp_path / "old"
    assert _train(config_path, old) == 0
    capsys.readouterr()
    assert _train(config_path, old, "--nproc", "2") == 2
    assert "is not empty; use --resume" in _one_error_line(capsys)
    assert calls == []
    assert _train(config_path, old, "--nproc", "2", "--overwrite") == 0
    assert calls == [["train", str(config_path), "--run-dir", str(old)]]  # cleared, children need no flag
    assert list(old.iterdir()) == []
