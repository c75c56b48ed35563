"""Fake run directories in the documented format (meta.json, metrics.jsonl, summary.json)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def write_fake_run(
    run_dir: Path,
    *,
    seed: int,
    accuracies: Sequence[float],
    status: str = "completed",
    steps_per_eval: int = 10,
    seconds_per_step: float = 0.5,
    lr: float = 0.1,
    write_summary: bool = True,
    error: str | None = None,
    lr_finder: bool = False,
) -> Path:
    """One run with an evaluation every ``steps_per_eval`` steps reaching the given accuracies."""
    run_dir.mkdir(parents=True, exist_ok=True)
    total_steps = steps_per_eval * len(accuracies)
    wall_time = total_steps * seconds_per_step
    meta = {
        "cadence_version": "0.1.0",
        "torch_version": "2.13.0",
        "python_version": "3.11",
        "platform": "linux",
        "device": "cpu",
        "seed": seed,
        "world_size": 1,
        "git_revision": None,
        "schedules": {"lr": f"constant({lr})", "momentum": "constant(0.9)"},
        "started_at": "2026-01-01T00:00:00+00:00",
        "status": status,
        "error": error,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_eval,
        "finished_at": None,
        "wall_time": wall_time,
        "name": None,
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    lines = []
    for step in range(1, total_steps + 1):
        lines.append(
            {
                "kind": "train",
                "step": step,
                "epoch": step / steps_per_eval,
                "lr": lr * (1 + step % 3),
                "momentum": 0.9,
                "loss": 2.0 / step,
                "time": step * seconds_per_step,
            }
        )
        if step % steps_per_eval == 0:
            accuracy = accuracies[step // steps_per_eval - 1]
            lines.append(
                {
                    "kind": "eval",
                    "step": step,
                    "epoch": step / steps_per_eval,
                    "time": step * seconds_per_step,
                    "val_loss": 1.0 - accuracy,
                    "val_accuracy": accuracy,
                }
            )
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    if write_summary:
        summary = {
            "status": status,
            "steps": total_steps,
            "wall_time": wall_time,
            "final": {"val_loss": 1.0 - accuracies[-1], "val_accuracy": accuracies[-1]},
            "best": {"val_loss": 1.0 - max(accuracies), "val_accuracy": max(accuracies)},
            "skipped_steps": 0,
            "extra": {},
        }
        (run_dir / "summary.json").write_text(json.dumps(summary))
    if lr_finder:
        lrs = [10 ** (-4 + 0.25 * index) for index in range(17)]
        losses = [2.3 - 0.1 * index if index < 12 else 2.3 + index for index in range(17)]
        (run_dir / "lr_finder.json").write_text(
            json.dumps({"lrs": lrs, "losses": losses, "suggested_lr": 0.01})
        )
    return run_dir


#: Final accuracies chosen for round hand computations (see test_tracking_compare.py).
BASELINE = (0.90, 0.91, 0.92)
CANDIDATE = (0.93, 0.94, 0.95)


@pytest.fixture
def write_run() -> Callable[..., Path]:
    """The :func:`write_fake_run` function (a fixture, so tests need no import of this file)."""
    return write_fake_run


@pytest.fixture
def fake_runs(tmp_path: Path) -> Callable[..., Path]:
    """Runs ``out/runs/<name>/seed-<s>``: constant (0.90/0.91/0.92), one_cycle (0.93/0.94/0.95, 1 failure)."""

    def make(include_failed: bool = True) -> Path:
        root = tmp_path / "out" / "runs"
        for seed, final in enumerate(BASELINE):
            write_fake_run(root / "constant" / f"seed-{seed}", seed=seed, accuracies=[0.5, 0.8, final])
        for seed, final in enumerate(CANDIDATE):
            write_fake_run(
                root / "one_cycle" / f"seed-{seed}",
                seed=seed,
                accuracies=[0.6, 0.9, final],
                seconds_per_step=0.25,
                lr_finder=True,
            )
        if include_failed:
            write_fake_run(
                root / "one_cycle" / "seed-3",
                seed=3,
                accuracies=[0.1, 0.1],
                status="diverged",
                error="loss is nan at step 12 (lr=3.0)",
            )
        return root

    return make
