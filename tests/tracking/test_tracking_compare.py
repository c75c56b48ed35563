"""compare_runs on fixed fake run directories: statistics, targets, failed runs, reports."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from cadence.errors import ConfigError
from cadence.tracking.compare import (
    compare_runs,
    find_run_dirs,
    format_table,
    load_run,
    parse_target,
    time_to_target,
)
from cadence.tracking.report import render_html, write_report


def _load(root: Path):
    return [load_run(path) for path in find_run_dirs([root])]


def test_groups_statistics_and_failed_run(fake_runs) -> None:
    root = fake_runs()
    runs = _load(root)
    assert {run.name for run in runs} == {"constant", "one_cycle"}
    comparison = compare_runs(runs, target=("val_accuracy", 0.9), order=["constant", "one_cycle"])
    constant, one_cycle = comparison["groups"]
    assert constant["name"] == "constant"
    assert constant["final"]["val_accuracy"]["mean"] == pytest.approx(0.91)
    assert constant["final"]["val_accuracy"]["std"] == pytest.approx(0.01)
    assert one_cycle["final"]["val_accuracy"]["mean"] == pytest.approx(0.94)
    assert (one_cycle["final"]["val_accuracy"]["min"], one_cycle["final"]["val_accuracy"]["max"]) == (
        0.93,
        0.95,
    )
    # the diverged run is listed, not counted
    assert (one_cycle["runs_usable"], one_cycle["runs_total"]) == (3, 4)
    assert comparison["failed_runs"] == [
        {
            "group": "one_cycle",
            "seed": 3,
            "path": str(root / "one_cycle" / "seed-3"),
            "status": "diverged",
            "error": "loss is nan at step 12 (lr=3.0)",
        }
    ]
    # target 0.9: constant reaches it at step 30 (final eval: 0.90, 0.91, 0.92), one_cycle at step 20
    assert constant["target"]["steps"]["mean"] == 30
    assert constant["target"]["seconds"]["mean"] == pytest.approx(15.0)
    assert one_cycle["target"]["steps"]["mean"] == 20
    assert one_cycle["target"]["seconds"]["mean"] == pytest.approx(5.0)
    assert one_cycle["target"]["reached"] == 3
    # total cost: 3 runs x 30 steps x 0.25 s plus the failed run's 20 x 0.5 s
    assert one_cycle["total_cost_seconds"] == pytest.approx(3 * 7.5 + 10.0)
    (significance,) = comparison["significance"]
    assert significance["baseline"] == "constant"
    assert significance["welch"]["t"] == pytest.approx(0.03 / math.sqrt(2e-4 / 3))
    assert significance["welch"]["df"] == pytest.approx(4.0)
    assert significance["significant"] is True
    table = format_table(comparison)
    assert "91.00 ± 1.00" in table
    assert "94.00 ± 1.00" in table
    assert "diverged: one_cycle seed 3" in table


def test_incomplete_and_missing_status(write_run, tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "a" / "seed-0", seed=0, accuracies=[0.5], status="running", write_summary=False
    )
    record = load_run(run)
    assert record.status == "incomplete"
    assert not record.usable
    assert record.final() == {"val_loss": 0.5, "val_accuracy": 0.5}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_run(empty).status == "missing"
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nope")


def test_truncated_metrics_line_is_ignored(write_run, tmp_path: Path) -> None:
    run = write_run(tmp_path / "seed-1", seed=1, accuracies=[0.5, 0.7])
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"kind": "eval", "step": 2')
    record = load_run(run, name="custom")
    assert record.name == "custom"
    assert len(record.evals) == 2


def test_time_to_target_for_losses_goes_down(fake_runs) -> None:
    root = fake_runs(include_failed=False)
    run = load_run(root / "constant" / "seed-0")
    assert time_to_target(run, "val_loss", 0.2) == (20, 10.0)
    assert time_to_target(run, "val_accuracy", 0.99) == (None, None)


@pytest.mark.parametrize("text", ["val_accuracy", "=0.9", "val_accuracy=high", "val_accuracy=nan"])
def test_parse_target_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="target"):
        parse_target(text)


def test_parse_target() -> None:
    assert parse_target("val_accuracy=0.9") == ("val_accuracy", 0.9)


def test_find_run_dirs_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        find_run_dirs([tmp_path / "missing"])
    with pytest.raises(ConfigError, match="no run directories"):
        find_run_dirs([tmp_path])


@pytest.mark.slow
def test_report_files_and_self_contained_html(fake_runs, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    root = fake_runs()
    runs = _load(root)
    comparison = compare_runs(runs, target=("val_accuracy", 0.9))
    paths = write_report(comparison, runs, tmp_path / "report")
    results = json.loads(paths["results"].read_text())
    assert results["primary_metric"] == "val_accuracy"
    assert [group["name"] for group in results["groups"]] == ["constant", "one_cycle"]
    plots = sorted(path.name for path in paths["plots"].iterdir())
    assert plots == sorted(
        [
            "schedules.png",
            "loss_vs_step.png",
            "loss_vs_time.png",
            "val_accuracy_vs_step.png",
            "val_accuracy_vs_time.png",
            "lr_finder.png",
        ]
    )
    page = paths["html"].read_text()
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    assert "<script" not in page
    assert "url(" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(plots)
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert "<table>" in page
    assert "diverged" in page
    assert "Welch t=" in page
    markdown = paths["markdown"].read_text()
    assert "| constant | 3/3 | 91.00 ± 1.00 |" in markdown
    assert "![schedules](plots/schedules.png)" in markdown


def test_html_escapes_names() -> None:
    comparison = {"primary_metric": None, "target": None, "groups": [], "significance": [], "failed_runs": []}
    page = render_html(comparison, title="<script>x</script>")
    assert "<script>x" not in page
