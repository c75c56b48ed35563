"""``benchmarks/lr_selection.py`` end to end on a tiny budget: records, failures and the report's gaps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lr_selection_benchmark_smoke(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "benchmarks/lr_selection.py",
        *("--tasks", "mnist1d-adam", "--seeds", "1", "--grid-points", "3", "--steps", "60"),
        *("--variants", "race 1", "sweep valley", "--no-peers", "--report", "--out", str(tmp_path)),
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    record = json.loads((tmp_path / "lr_selection" / "mnist1d-adam.json").read_text())
    runs = record["runs"]
    assert sorted(runs) == ["grid 0.001|0", "grid 0.0316|0", "grid 1|0", "race 1|0", "sweep valley|0"]
    assert record["spec"]["steps"] == 60
    for run in runs.values():
        assert 0.0 < run["accuracy"] <= 1.0
        assert isinstance(run["failed"], bool)
    # The race's cost counts the sweep and every candidate's steps: more than the sweep alone.
    assert runs["race 1|0"]["cost"] > runs["sweep valley|0"]["cost"] > 1.0
    report = (tmp_path / "lr_selection.md").read_text()
    grid = {run["method"]: run["accuracy"] for run in runs.values() if run["method"].startswith("grid")}
    best = max(grid.values())
    gap = 100 * (runs["race 1|0"]["accuracy"] - best)
    row = re.search(r"^\| race 1 \|.*$", report, re.MULTILINE)
    assert row is not None
    assert f"| {gap:+.2f} |" in row.group(0)
    assert "(grid best)" in report
