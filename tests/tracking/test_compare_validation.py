"""`cadence compare` checks every config × --set and the --target metric before the first run starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadence.cli import compare_cmd
from cadence.cli.compare_checks import check_target, first_error_line
from cadence.cli.main import main
from cadence.tracking.compare import load_run

GOOD = '[data]\nname = "synthetic"\n\n[model]\nname = "mlp"\n\n[train]\nepochs = 1\n'


class Finished:
    def __init__(self, code: int) -> None:
        self.code = code

    def poll(self) -> int:
        return self.code


@pytest.fixture
def launched(monkeypatch) -> list[str]:
    """Records every run compare would start (none should start in these tests unless valid)."""
    started: list[str] = []

    def launch(job, threads):
        started.append(f"{job.name}/{job.seed}")
        return Finished(0)

    monkeypatch.setattr(compare_cmd, "_launch", launch)
    return started


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        ("", [], "needs a [data] section"),
        ("[data\nname = 1", [], "invalid TOML"),
        (GOOD, ["--set", "train.epoch=2"], "unknown key train.epoch (did you mean 'epochs'?)"),
        (GOOD, ["--set", "data.name=mnist2d"], "unknown dataset 'mnist2d'"),
        (GOOD, ["--set", "model.widht=3"], "unknown key model.widht"),
        (GOOD, ["--set", "optimizer.name=sgdd"], "unknown optimizer 'sgdd'"),
        (GOOD, ["--set", "schedule.name=one_cycle"], "missing key(s) 'max_lr'"),
        (GOOD, ["--set", "train.device=tpu9"], "train.device = 'tpu9': not a device"),
        (
            GOOD,
            ["--target", "val_acc=0.9"],
            "--target val_acc: no such metric; the runs log: val_loss, val_accuracy",
        ),
    ],
)
def test_bad_config_or_override_is_refused_before_any_run(
    text, extra, message, tmp_path: Path, launched, capsys
) -> None:
    good = _write(tmp_path, "good", GOOD)
    other = _write(tmp_path, "other", text)
    out = tmp_path / "out"
    assert main(["compare", str(good), str(other), "--seeds", "2", "--out", str(out), *extra]) == 2
    captured = capsys.readouterr()
    assert launched == []
    assert not out.exists()
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("cadence compare: error: ")
    assert message in captured.err


def test_target_metric_of_finished_runs_comes_from_what_they_logged(write_run, tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "a" / "seed-0", seed=0, accuracies=[0.5]))
    check_target("val_loss", [run])
    with pytest.raises(
        Exception, match="--target val_acc: no such metric; the runs log: val_loss, val_accuracy"
    ):
        check_target("val_acc", [run])


def test_a_failed_run_ends_nonzero_and_prints_its_first_error_line(
    write_run, tmp_path: Path, monkeypatch, capsys
) -> None:
    good, bad = _write(tmp_path, "good", GOOD), _write(tmp_path, "bad", GOOD)

    def launch(job, threads):
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        if job.name == "bad":
            job.log_path.write_text(
                'step 1\nTraceback (most recent call last):\n  File "x.py", line 1, in error_here\n'
                f"RuntimeError: out of memory on seed {job.seed}\nsecond line\n"
            )
            return Finished(1)
        write_run(job.run_dir, seed=job.seed, accuracies=[0.5, 0.9])
        return Finished(0)

    monkeypatch.setattr(compare_cmd, "_launch", launch)
    out = tmp_path / "out"
    assert main(["compare", str(good), str(bad), "--seeds", "2", "--out", str(out), "--no-plots"]) == 1
    captured = capsys.readouterr()
    assert "cadence compare: bad seed 0 failed: RuntimeError: out of memory on seed 0" in captured.out
    assert "cadence compare: bad seed 1 failed: RuntimeError: out of memory on seed 1" in captured.out
    assert "2 run(s) failed" in captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["groups"][0]["runs_usable"] == 2


def test_first_error_line_falls_back_to_the_recorded_error(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("step 1\nstep 2\n")
    assert first_error_line(log, "diverged at step 3\nmore") == "diverged at step 3"
    assert first_error_line(tmp_path / "missing.log", None).startswith("no error recorded")
