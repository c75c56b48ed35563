"""`cadence compare` with the training processes replaced by fakes that write run directories."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from cadence.cli import compare_cmd
from cadence.cli.main import main

TINY_CONFIG = '[data]\nname = "synthetic"\n\n[model]\nname = "mlp"\n\n[train]\nepochs = 1\n'


class FinishedProcess:
    def __init__(self, return_code: int) -> None:
        self.return_code = return_code

    def poll(self) -> int:
        return self.return_code


def _args(**values) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    compare_cmd.add_arguments(parser)
    namespace = parser.parse_args([])
    for key, value in values.items():
        setattr(namespace, key, value)
    return namespace


@pytest.fixture
def configs(tmp_path: Path) -> list[Path]:
    paths = []
    for name in ("baseline", "candidate"):
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_CONFIG)
        paths.append(path)
    return paths


def _fake_launcher(write_fake_run, launched: list[tuple[str, int]], diverge: set[tuple[str, int]]):
    def launch(job: compare_cmd.RunJob, threads: int) -> FinishedProcess:
        assert threads >= 1
        launched.append((job.name, job.seed))
        if (job.name, job.seed) in diverge:
            write_fake_run(job.run_dir, seed=job.seed, accuracies=[0.1], status="diverged", error="nan loss")
            return FinishedProcess(1)
        base = 0.90 if job.name == "baseline" else 0.93
        write_fake_run(job.run_dir, seed=job.seed, accuracies=[0.5, base + 0.01 * job.seed])
        return FinishedProcess(0)

    return launch


def test_runs_every_config_and_seed_and_skips_finished_runs(
    configs, write_run, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    launched: list[tuple[str, int]] = []
    launcher = _fake_launcher(write_run, launched, diverge={("candidate", 1)})
    args = _args(
        configs=[str(path) for path in configs],
        seeds=3,
        jobs=2,
        out=str(out),
        target="val_accuracy=0.9",
        no_plots=True,
    )
    assert compare_cmd.run(args, launcher=launcher) == 0
    assert sorted(launched) == [(name, seed) for name in ("baseline", "candidate") for seed in range(3)]
    printed = capsys.readouterr().out
    assert "diverged: candidate seed 1" in printed
    assert "report: " in printed
    results = json.loads((out / "results.json").read_text())
    candidate = results["groups"][1]
    assert (candidate["name"], candidate["runs_usable"], candidate["runs_total"]) == ("candidate", 2, 3)
    assert results["failed_runs"][0]["status"] == "diverged"
    assert (out / "report.html").exists()
    # rerun: only the diverged run starts again
    launched.clear()
    assert compare_cmd.run(args, launcher=_fake_launcher(write_run, launched, diverge=set())) == 0
    assert launched == [("candidate", 1)]
    assert "[skip] baseline seed 0: already completed" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["failed_runs"] == []


def test_process_without_run_record_is_a_failed_run(configs, write_run, tmp_path: Path) -> None:
    def launch(job: compare_cmd.RunJob, threads: int) -> FinishedProcess:
        if job.name == "candidate":
            return FinishedProcess(2)  # e.g. a config error: no run directory at all
        write_run(job.run_dir, seed=job.seed, accuracies=[0.9])
        return FinishedProcess(0)

    out = tmp_path / "out"
    args = _args(configs=[str(path) for path in configs], seeds=2, out=str(out), no_plots=True)
    assert compare_cmd.run(args, launcher=launch) == 1
    results = json.loads((out / "results.json").read_text())
    assert [run["status"] for run in results["groups"][1]["runs"]] == ["failed", "failed"]
    assert "left no run record" in results["failed_runs"][0]["error"]


def test_interrupted_run_resumes_from_its_checkpoint(configs, write_run, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    interrupted = out / "runs" / "baseline" / "seed-0"
    write_run(interrupted, seed=0, accuracies=[0.5], status="running", write_summary=False)
    meta = json.loads((interrupted / "meta.json").read_text())
    # the fingerprint this config gives now (runs recorded before fingerprints are started afresh instead)
    from cadence.config.fingerprint import expected_fingerprint

    meta["fingerprint"] = expected_fingerprint(configs[0], ["train.seed=0"]) or {"values": {}}
    (interrupted / "meta.json").write_text(json.dumps(meta))
    (interrupted / "checkpoints").mkdir()
    (interrupted / "checkpoints" / "step-00000010.pt").write_bytes(b"")
    commands: list[list[str]] = []

    def launch(job: compare_cmd.RunJob, threads: int) -> FinishedProcess:
        commands.append(job.command())
        write_run(job.run_dir, seed=job.seed, accuracies=[0.5, 0.9])
        return FinishedProcess(0)

    args = _args(configs=[str(configs[0])], seeds=2, out=str(out), no_plots=True)
    assert compare_cmd.run(args, launcher=launch) == 0
    assert commands[0][-1] == "--resume"
    assert "--resume" not in commands[1]
    assert "baseline seed 0 (resuming from its checkpoint)" in capsys.readouterr().out


def test_train_command_line(configs, tmp_path: Path) -> None:
    (job, _) = compare_cmd.plan_jobs(configs[:1], 2, tmp_path, ["train.epochs=2"])
    assert job.command() == [
        sys.executable,
        "-m",
        "cadence",
        "train",
        str(configs[0]),
        "--set",
        "train.seed=0",
        "--set",
        "train.epochs=2",
        "--run-dir",
        str(tmp_path / "runs" / "baseline" / "seed-0"),
    ]


def test_duplicate_stems_are_made_unique(tmp_path: Path) -> None:
    paths = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "same.toml")
        paths[-1].write_text("")
    jobs = compare_cmd.plan_jobs(paths, 1, tmp_path / "out")
    assert [job.name for job in jobs] == ["same", "same-2"]


def test_reads_finished_runs(fake_runs, tmp_path: Path, capsys) -> None:
    root = fake_runs()
    args = _args(runs=[str(root)], out=str(tmp_path / "report"), no_plots=True)
    assert compare_cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert "one_cycle vs constant" in printed
    assert "diverged: one_cycle seed 3" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare"], "nothing to compare"),
        (["compare", "missing.toml"], "config file not found"),
        (["compare", "--runs", "x", "--seeds", "0"], "--seeds must be at least 1"),
        (["compare", "--runs", "x", "--jobs", "0"], "--jobs must be at least 1"),
        (["compare", "--runs", "x", "--target", "val_accuracy"], "METRIC=VALUE"),
        (["compare", "CONFIG_PLACEHOLDER", "--set", "train.seed=3"], "--set train.seed"),
        (["compare", "CONFIG_PLACEHOLDER", "--set", "novalue"], "KEY=VALUE"),
    ],
)
def test_bad_arguments_exit_2(
    argv, message, configs, fake_runs, write_run, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake_runs()
    (tmp_path / "x").mkdir()
    write_run(tmp_path / "x" / "seed-0", seed=0, accuracies=[0.5])
    argv = [str(configs[0]) if item == "CONFIG_PLACEHOLDER" else item for item in argv]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("cadence compare: error:")
    assert message in error
