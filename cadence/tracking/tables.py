"""Plain-text tables of a comparison made by :func:`cadence.tracking.compare.compare_runs`."""

from __future__ import annotations

from typing import Any

from cadence.tracking.stats import higher_is_better

__all__ = ["format_cell", "format_seconds", "format_table", "format_target", "table_rows"]


def _scale_for(metric: str, summary: dict[str, Any]) -> float:
    values = [summary.get("min"), summary.get("max")]
    fraction = "accuracy" in metric.lower() and all(v is not None and 0.0 <= v <= 1.0 for v in values)
    return 100.0 if fraction else 1.0


def format_cell(summary: dict[str, Any] | None, metric: str = "", digits: int = 2) -> str:
    """``"93.10 ± 0.45"`` from a summary dict (accuracies in percent); ``"—"`` when there is no value."""
    if not summary or not summary.get("n") or summary.get("mean") is None:
        return "—"
    scale = _scale_for(metric, summary)
    mean = summary["mean"] * scale
    if summary["n"] == 1 or summary.get("std") is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {summary['std'] * scale:.{digits}f}"


def format_seconds(value: float | None) -> str:
    """Seconds with one decimal; below 1 s two significant digits, so a short run never reads as 0.0."""
    if value is None:
        return "—"
    return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2g}"


def format_target(metric: str, value: float, label: str | None = None) -> str:
    """``"val_accuracy≥90%"``: an accuracy fraction in percent (like the tables); ``≤`` for losses. ``label``
    names the metric in its place (``"test accuracy≥90%"``)."""
    sign = "≥" if higher_is_better(metric) else "≤"
    shown = label or metric
    if "accuracy" in metric.lower() and 0.0 <= value <= 1.0:
        return f"{shown}{sign}{value * 100:g}%"
    return f"{shown}{sign}{value:g}"


def table_rows(comparison: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table (one row per group)."""
    metric = comparison.get("primary_metric")
    target = comparison.get("target")
    labels = comparison.get("labels") or {}  # e.g. {"val_accuracy": "test accuracy"}: what the split is
    shown = labels.get(metric, metric)
    header = ["config", "runs"]
    if metric:
        header += [f"final {shown}", f"best {shown}", f"min–max final {shown}"]
    other_metrics = []
    for group in comparison["groups"]:
        for key in group["final"]:
            if key != metric and key.startswith("val_") and key not in other_metrics:
                other_metrics.append(key)
    header += [f"final {labels.get(key, key)}" for key in other_metrics]
    extra_keys: list[str] = []
    for group in comparison["groups"]:
        for key in group.get("extra", {}):
            if "accuracy" in key and key not in extra_keys:
                extra_keys.append(key)
    header += extra_keys
    if target:
        shown_target = format_target(target["metric"], target["value"], labels.get(target["metric"]))
        header += [f"steps to {shown_target}", "seconds to target"]
    header += ["steps", "wall time (s)", "total cost (s)"]
    rows = []
    for group in comparison["groups"]:
        row = [group["name"], f"{group['runs_usable']}/{group['runs_total']}"]
        if metric:
            final = group["final"].get(metric)
            row += [format_cell(final, metric), format_cell(group["best"].get(metric), metric)]
            if final and final.get("n"):
                scale = _scale_for(metric, final)
                row.append(f"{final['min'] * scale:.2f}–{final['max'] * scale:.2f}")
            else:
                row.append("—")
        row += [format_cell(group["final"].get(key), key, 3) for key in other_metrics]
        row += [format_cell(group.get("extra", {}).get(key), key) for key in extra_keys]
        if target:
            info = group.get("target", {})
            reached = f" ({info.get('reached', 0)}/{info.get('of', 0)})"
            row += [
                format_cell(info.get("steps"), "steps", 0) + reached,
                format_cell(info.get("seconds"), "", 1),
            ]
        row += [
            format_cell(group["steps"], "steps", 0),
            format_cell(group["wall_time"], "", 1),
            format_seconds(group["total_cost_seconds"]),
        ]
        rows.append(row)
    return header, rows


def format_table(comparison: dict[str, Any]) -> str:
    """A fixed-width text table of the comparison, followed by significance statements and failed runs."""
    header, rows = table_rows(comparison)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if comparison.get("significance"):
        lines.append("")
        lines += [entry["statement"] for entry in comparison["significance"]]
    if comparison.get("failed_runs"):
        lines.append("")
        for failed in comparison["failed_runs"]:
            reason = f": {failed['error']}" if failed.get("error") else ""
            lines.append(
                f"{failed['status']}: {failed['group']} seed {failed['seed']} ({failed['path']}){reason}"
            )
    return "\n".join(lines)
