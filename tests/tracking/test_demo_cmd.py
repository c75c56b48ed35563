"""`cadence demo`: argument errors, and a tiny in-process run producing the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadence.cli.demo_cmd import FAST_POLICIES, POLICIES, build_schedules, policy_steps
from cadence.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--steps", "3"], "--steps must be at least 32"),
        (["--jobs", "-1"], "--jobs must be 0"),
    ],
)
def test_bad_arguments_exit_2(argv, message, tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_policies_share_the_found_lr() -> None:
    steps, found = 1200, 0.02
    one_cycle = build_schedules("one_cycle", steps, found)
    assert one_cycle["lr"](int(0.3 * steps) - 1) == pytest.approx(found)  # the peak
    assert one_cycle["momentum"](0) == pytest.approx(0.95)
    triangular2 = build_schedules("triangular2", steps, found)["lr"]
    assert triangular2(0) == pytest.approx(found / 4)
    assert triangular2(steps // 6) == pytest.approx(found)
    assert triangular2(3 * steps // 6) == pytest.approx(found / 4 + (found - found / 4) / 2)  # halved
    restarts = build_schedules("cosine_restarts", steps, found)["lr"]
    assert restarts.cycle_ends(steps) == [299, 599, 899, 1199]
    assert build_schedules("reference", steps, found)["lr"](500) == pytest.approx(1e-2)


def test_the_reference_is_the_published_recipe() -> None:
    """The demo's reference is configs/experiments/mnist1d_reference.toml: same LR, batch and steps."""
    from cadence.cli import demo_cmd
    from cadence.config import load_config

    config = load_config(ROOT / "configs" / "experiments" / "mnist1d_reference.toml")
    assert config["train"]["total_steps"] == demo_cmd.DEFAULT_STEPS == 6000
    assert config["train"]["batch_size"] == demo_cmd.BATCH_SIZE
    assert config["optimizer"]["lr"] == demo_cmd.REFERENCE_LR
    assert policy_steps("one_cycle", demo_cmd.DEFAULT_STEPS) == 1500


def test_the_fast_policies_get_a_quarter_of_the_reference_steps() -> None:
    assert policy_steps("reference", 2000) == 2000
    assert [policy_steps(policy, 2000) for policy in FAST_POLICIES] == [500, 500, 500]


@pytest.mark.slow
def test_tiny_demo_writes_the_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    argv = [
        "demo",
        "--quick",
        "--seeds",
        "1",
        "--steps",
        "40",
        "--jobs",
        "0",
        "--no-plots",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "max_lr = " in printed
    assert "finalists of 5 candidates" in printed
    assert "final test accuracy" in printed  # named for the split it is measured on
    assert "report: " in printed
    results = json.loads((out / "results.json").read_text())
    assert [group["name"] for group in results["groups"]] == list(POLICIES)
    assert all(group["runs_usable"] == 1 for group in results["groups"])
    assert results["demo"]["steps"] == {
        "reference": 40,
        "one_cycle": 10,
        "triangular2": 10,
        "cosine_restarts": 10,
    }
    restarts = results["groups"][-1]
    assert 0.0 <= restarts["extra"]["ensemble_accuracy"]["mean"] <= 1.0
    selection = json.loads((out / "runs" / "one_cycle" / "seed-0" / "lr_selection.json").read_text())
    assert selection["value"] == results["demo"]["found_lr"]
    assert not (out / "runs" / "reference" / "seed-0" / "lr_selection.json").exists()
    assert "http" not in (out / "report.html").read_text()
