"""Report conventions: diverged runs do not set the axes, real costs, one unit, consistent significance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cadence.tracking import plots
from cadence.tracking.compare import compare_runs, format_table, load_run
from cadence.tracking.report import render_html
from cadence.tracking.stats import compare_samples, student_t_critical, welch_interval, welch_t_test
from cadence.tracking.tables import format_seconds, table_rows


@pytest.fixture
def captured_axes(monkeypatch) -> list:
    """The axes of every figure the plot functions finish (instead of PNG bytes)."""
    pytest.importorskip("matplotlib")
    figures: list = []

    def keep(figure) -> bytes:
        figures.append(figure.axes)
        return b"png"

    monkeypatch.setattr(plots, "_png", keep)
    return figures


def _diverge(run_dir: Path, *, lr: float, loss: float, seconds: float) -> None:
    """Turn a fake run into one that diverged: LR and loss blow up, the summary says diverged."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        if line["kind"] == "train":
            line["lr"], line["loss"] = lr * line["step"], loss * line["step"]
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(status="diverged", wall_time=seconds)
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def runs_with_a_diverged_config(write_run, tmp_path: Path) -> list:
    root = tmp_path / "runs"
    for seed in range(2):
        write_run(root / "constant" / f"seed-{seed}", seed=seed, accuracies=[0.5, 0.8 + seed / 100], lr=0.1)
        path = write_run(root / "huge_lr" / f"seed-{seed}", seed=seed, accuracies=[0.1, 0.1], lr=0.1)
        _diverge(path, lr=2000.0, loss=1e10, seconds=0.04)
    return [load_run(path) for path in sorted(root.glob("*/seed-*"))]


def test_diverged_runs_are_left_out_of_the_axis_range(runs_with_a_diverged_config, captured_axes) -> None:
    runs = runs_with_a_diverged_config
    plots.plot_schedules(runs)
    plots.plot_curves(runs, source="train", key="loss", axis="step")
    lr_axis, _momentum_axis = captured_axes[0]
    (loss_axis,) = captured_axes[1]
    # the usable runs' LR is 0.1 .. 0.3 and their loss 2/step <= 2: the diverged 2000 x step / 1e10 x step
    # would stretch the axes by orders of magnitude
    assert lr_axis.get_ylim()[1] < 0.5
    assert loss_axis.get_ylim()[1] < 5.0
    legend = [text.get_text() for text in loss_axis.get_legend().get_texts()]
    assert "huge_lr (2 seeds) (diverged, clipped)" in legend
    assert "constant (2 seeds)" in legend
    assert any(line.get_marker() == "x" for line in loss_axis.get_lines())


def test_axis_limits_cover_what_they_are_given() -> None:
    assert plots.axis_limits([np.array([1.0, 2.0]), np.array([3.0, np.inf])], margin=0.0) == (1.0, 3.0)
    low, high = plots.axis_limits([np.array([0.01, 1.0])], log=True, margin=0.5)
    assert (low, high) == pytest.approx((0.001, 10.0))
    assert plots.axis_limits([np.array([np.nan])]) is None


def test_accuracy_axes_are_in_percent(fake_runs, captured_axes) -> None:
    runs = [load_run(path) for path in sorted(fake_runs(include_failed=False).glob("*/seed-*"))]
    plots.plot_curves(runs, source="eval", key="val_accuracy", axis="step")
    (axis,) = captured_axes[0]
    assert axis.get_ylabel() == "val_accuracy (%)"
    low, high = axis.get_ylim()
    assert 40 < low < 55
    assert 94 < high < 100


def test_one_lr_finder_sweep_is_counted_once(write_run, tmp_path: Path, captured_axes) -> None:
    runs = []
    for name in ("one_cycle", "triangular2", "cosine_restarts"):
        for seed in range(3):
            path = write_run(tmp_path / name / f"seed-{seed}", seed=seed, accuracies=[0.9], lr_finder=True)
            runs.append(load_run(path))
    plots.plot_lr_finder(runs)
    (axis,) = captured_axes[0]
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["one_cycle, triangular2, cosine_restarts (1 sweep, used by 9 runs)"]


def test_a_diverged_run_costs_its_real_wall_time(runs_with_a_diverged_config) -> None:
    comparison = compare_runs(runs_with_a_diverged_config)
    diverged = comparison["groups"][1]
    assert diverged["name"] == "huge_lr"
    assert diverged["total_cost_seconds"] == pytest.approx(0.08)
    header, rows = table_rows(comparison)
    assert rows[1][header.index("total cost (s)")] == "0.08"
    html = render_html(comparison)
    assert "<td>0.04</td>" in html  # each diverged run's own wall time in the runs table
    assert format_seconds(0.0) == "0.0"
    assert format_seconds(12.345) == "12.3"


def test_target_header_is_in_percent(fake_runs) -> None:
    runs = [load_run(path) for path in sorted(fake_runs().glob("*/seed-*"))]
    header, _ = table_rows(compare_runs(runs, target=("val_accuracy", 0.9)))
    assert "steps to val_accuracy≥90%" in header
    header, _ = table_rows(compare_runs(runs, target=("val_loss", 0.2)))
    assert "steps to val_loss≤0.2" in header


def test_wide_tables_scroll_inside_their_box(fake_runs) -> None:
    runs = [load_run(path) for path in sorted(fake_runs().glob("*/seed-*"))]
    html = render_html(compare_runs(runs, target=("val_accuracy", 0.9)))
    assert ".table-wrap { overflow-x: auto;" in html
    assert html.count('<div class="table-wrap"><table>') == html.count("<table>") == 2


def test_t_critical_values() -> None:
    assert student_t_critical(0.05, 4) == pytest.approx(2.776445, abs=1e-6)
    assert student_t_critical(0.05, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert student_t_critical(0.01, 2) == pytest.approx(9.924843, abs=1e-6)


def test_the_confidence_interval_and_the_verdict_never_contradict() -> None:
    generator = np.random.default_rng(0)
    for _ in range(300):
        size_a, size_b = generator.integers(2, 6, size=2)
        a = generator.normal(0.9, generator.uniform(0.001, 0.05), size_a)
        b = generator.normal(0.9 + generator.normal(0, 0.03), generator.uniform(0.001, 0.05), size_b)
        result = compare_samples("a", a, "b", b)
        low, high = result["interval"]["low"], result["interval"]["high"]
        assert result["significant"] == (low > 0 or high < 0), result["statement"]
        verdict = "— significant" if result["significant"] else "— not significant"
        assert verdict in result["statement"]
        assert "bootstrap" not in result["statement"]


def test_significance_sentence_has_the_welch_interval() -> None:
    result = compare_samples("one_cycle", [0.93, 0.94, 0.95], "constant", [0.90, 0.91, 0.92])
    assert result["statement"] == (
        "one_cycle vs constant (val_accuracy): +3.00 ± 0.82 points (± standard error), 95% CI [+0.73, +5.27] "
        "(Welch t=3.67, df=4.0, p=0.0213); 3 seeds each — significant at 0.05 (better)"
    )
    welch = welch_t_test([1.0, 1.0], [0.0, 0.0])
    assert welch_interval(welch) == (1.0, 1.0)
    assert welch.p_value == 0.0
    assert math.isfinite(result["bootstrap"]["low"])


def test_text_table_says_diverged(runs_with_a_diverged_config) -> None:
    text = format_table(compare_runs(runs_with_a_diverged_config))
    assert "diverged: huge_lr seed 0" in text
