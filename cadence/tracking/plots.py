"""Plots of a comparison: schedules overlaid, curves with a band over seeds, LR-finder curves.

matplotlib is an optional dependency (``pip install 'cadence[plot]'``), imported lazily with the Agg backend,
so nothing here opens a window. Each function returns PNG bytes; :func:`comparison_plots` returns all plots
of a set of runs as ``{file name: PNG bytes}`` for the report to embed.

Curves of the runs of one configuration are put on a common grid (by linear interpolation) and drawn as the
mean over seeds with a shaded min–max band, so one lucky seed cannot pass for the typical result.

Conventions: accuracies are drawn in percent, like the tables. Runs that diverged (or failed) never set the
axis range: the limits come from the usable runs (:func:`axis_limits`), and a diverged curve is drawn
clipped to them, dashed, ending in an ``x`` where it left the plot or stopped, with "(diverged, clipped)" in
its legend entry. Only when no run is usable do the others set the range.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from cadence.errors import require
from cadence.tracking.records import RunRecord
from cadence.tracking.stats import higher_is_better

__all__ = [
    "axis_limits",
    "band_over_seeds",
    "comparison_plots",
    "plot_curves",
    "plot_lr_finder",
    "plot_lr_race",
    "plot_schedules",
]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _pyplot():
    matplotlib = require("matplotlib", "plot", "plots")
    matplotlib.use("Agg", force=True)
    return require("matplotlib.pyplot", "plot", "plots")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _percent(key: str, values: np.ndarray) -> bool:
    """Accuracy-like values stored as fractions are drawn in percent (as the tables show them)."""
    finite = values[np.isfinite(values)]
    return "accuracy" in key.lower() and finite.size > 0 and bool(np.all((finite >= 0) & (finite <= 1)))


def axis_limits(
    curves: Sequence[np.ndarray], *, log: bool = False, margin: float = 0.05
) -> tuple[float, float] | None:
    """``(low, high)`` covering the finite values of ``curves`` (positive ones on a log axis), with a margin.

    Pass only the curves of usable runs: a diverged run's values then cannot stretch the axis. ``None`` when
    there is nothing to cover.
    """
    values = (
        np.concatenate([np.asarray(curve, float).ravel() for curve in curves]) if curves else np.array([])
    )
    values = values[np.isfinite(values)]
    if log:
        values = values[values > 0]
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if log:
        span = np.log10(high) - np.log10(low) if high > low else 1.0
        return float(10 ** (np.log10(low) - margin * span)), float(10 ** (np.log10(high) + margin * span))
    span = high - low if high > low else max(abs(high), 1.0)
    return low - margin * span, high + margin * span


def _draw_clipped(ax, x: np.ndarray, y: np.ndarray, limits: tuple[float, float], **style) -> None:
    """A diverged run's curve: clipped to ``limits``, dashed, with an ``x`` at its last drawn point."""
    low, high = limits
    outside = np.nonzero((y < low) | (y > high) | ~np.isfinite(y))[0]
    end = int(outside[0]) + 1 if outside.size else y.size
    shown_x, shown_y = x[:end], np.clip(np.nan_to_num(y[:end], nan=high, posinf=high, neginf=low), low, high)
    ax.plot(shown_x, shown_y, linestyle="--", linewidth=1.2, **style)
    if shown_x.size:
        ax.plot(
            shown_x[-1:], shown_y[-1:], marker="x", markersize=8, linestyle="none", color=style.get("color")
        )


def _groups(runs: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    return groups


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average (edges use the available points) to make noisy training losses readable."""
    if window <= 1 or values.size < window:
        return values
    kernel = np.ones(window)
    sums = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones_like(values), kernel, mode="same")
    return sums / counts


def band_over_seeds(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Put curves ``(x, y)`` on a common grid and return ``(grid, mean, low, high)`` (low/high = min/max).

    The grid spans the x-range all curves cover (from the largest first x to the smallest last x), so the
    band never extrapolates. ``None`` when there is no overlap.
    """
    usable = [(np.asarray(x, float), np.asarray(y, float)) for x, y in curves if len(x) > 0]
    if not usable:
        return None
    start = max(float(x[0]) for x, _ in usable)
    stop = min(float(x[-1]) for x, _ in usable)
    if stop < start:
        return None
    if len(usable) == 1:
        x, y = usable[0]
        return x, y, y, y
    grid = np.linspace(start, stop, points) if stop > start else np.array([start])
    stacked = np.stack([np.interp(grid, x, y) for x, y in usable])
    return grid, stacked.mean(axis=0), stacked.min(axis=0), stacked.max(axis=0)


def _series(run: RunRecord, source: str, key: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
    records = run.train if source == "train" else run.evals
    pairs = [
        (record.get(axis), record.get(key))
        for record in records
        if isinstance(record.get(key), (int, float)) and isinstance(record.get(axis), (int, float))
    ]
    pairs = [(x, y) for x, y in pairs if np.isfinite(y)]
    if not pairs:
        return np.array([]), np.array([])
    x, y = np.array(pairs, dtype=float).T
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def plot_curves(
    runs: Sequence[RunRecord], *, source: str, key: str, axis: str = "step", title: str | None = None
) -> bytes | None:
    """Mean curve and min–max band per configuration of ``key`` against ``axis`` ("step" or "time").

    ``source`` is "train" (the logged training loss, smoothed) or "eval". ``None`` when no run has the key.
    Configurations without a usable run are drawn clipped to the usable runs' range (see the module notes).
    """
    plt = _pyplot()
    log = key == "loss" or (source == "train" and not higher_is_better(key))
    bands: list[tuple[int, str, int, bool, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = []
    for index, (name, members) in enumerate(_groups(runs).items()):
        usable = any(run.usable for run in members)
        curves = [_series(run, source, key, axis) for run in members]
        curves = [(x, y) for x, y in curves if x.size]
        if source == "train":
            curves = [(x, _smooth(y, max(1, x.size // 50))) for x, y in curves]
        band = band_over_seeds(curves)
        if band is not None:
            bands.append((index, name, len(curves), usable, band))
    if not bands:
        return None
    percent = _percent(key, np.concatenate([band[1] for *_, band in bands]))
    scale = 100.0 if percent else 1.0
    reference = [band[2:] for *_, usable, band in bands if usable] or [band[2:] for *_, band in bands]
    limits = axis_limits([values * scale for pair in reference for values in pair], log=log)
    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    for index, name, count, usable, (grid, mean, low, high) in bands:
        color = _COLORS[index % len(_COLORS)]
        label = f"{name} ({count} seed{'s' if count != 1 else ''})"
        if not usable and limits is not None and any(run.usable for run in runs):
            _draw_clipped(ax, grid, mean * scale, limits, color=color, label=f"{label} (diverged, clipped)")
            continue
        ax.plot(
            grid,
            mean * scale,
            color=color,
            label=label,
            linewidth=1.5,
            marker="o" if grid.size < 30 else None,
            markersize=3,
        )
        if count > 1:
            ax.fill_between(grid, low * scale, high * scale, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("optimizer step" if axis == "step" else "wall time (s)")
    ax.set_ylabel(f"{key} (%)" if percent else key)
    if log:
        ax.set_yscale("log")
    if limits is not None:
        ax.set_ylim(*limits)
    ax.set_title(title or f"{key} vs {'steps' if axis == 'step' else 'wall time'} (mean, min–max band)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(figure)


def plot_schedules(runs: Sequence[RunRecord]) -> bytes | None:
    """LR (top) and momentum (bottom, when logged) against step, one line per configuration (first seed).

    The axes cover the configurations with a usable run; one whose runs all diverged is drawn clipped.
    """
    plt = _pyplot()
    groups = _groups(runs)
    has_momentum = any(
        "momentum" in record for members in groups.values() for run in members for record in run.train[:5]
    )
    keys = ["lr", "momentum"] if has_momentum else ["lr"]
    lines: list[tuple[int, str, bool, dict[str, tuple[np.ndarray, np.ndarray]]]] = []
    for index, (name, members) in enumerate(groups.items()):
        run = next((run for run in members if run.usable and run.train), None)
        run = run or next((run for run in members if run.train), None)
        if run is not None:
            series = {key: _series(run, "train", key, "step") for key in keys}
            lines.append((index, name, run.usable, series))
    if not any(x.size for *_, series in lines for x, _ in series.values()):
        return None
    figure, axes = plt.subplots(
        len(keys), 1, figsize=(6.4, 5.2 if has_momentum else 3.2), sharex=True, squeeze=False
    )
    any_usable = any(usable for _, _, usable, _ in lines)
    for row, key in enumerate(keys):
        reference = [series[key][1] for _, _, usable, series in lines if usable or not any_usable]
        limits = axis_limits(reference)
        for index, name, usable, series in lines:
            x, y = series[key]
            if not x.size:
                continue
            color = _COLORS[index % len(_COLORS)]
            if not usable and any_usable and limits is not None:
                _draw_clipped(axes[row][0], x, y, limits, color=color, label=f"{name} (diverged, clipped)")
            else:
                axes[row][0].plot(x, y, color=color, label=name, linewidth=1.5)
        if limits is not None:
            axes[row][0].set_ylim(*limits)
    axes[0][0].set_ylabel("learning rate")
    axes[0][0].set_title("schedules")
    axes[0][0].legend(fontsize=8)
    if has_momentum:
        axes[1][0].set_ylabel("momentum / β₁")
    axes[-1][0].set_xlabel("optimizer step")
    for row in axes:
        row[0].grid(alpha=0.3)
    return _png(figure)


def _finder_arrays(data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    lrs = data.get("lrs", data.get("lr"))
    losses = data.get("smoothed_losses", data.get("losses", data.get("loss")))
    if not isinstance(lrs, list) or not isinstance(losses, list):
        return np.array([]), np.array([])
    length = min(len(lrs), len(losses))
    lrs_array = np.array([value if value is not None else np.nan for value in lrs[:length]], dtype=float)
    loss_array = np.array([value if value is not None else np.nan for value in losses[:length]], dtype=float)
    keep = np.isfinite(lrs_array) & np.isfinite(loss_array)
    return lrs_array[keep], loss_array[keep]


def _suggested_lr(data: dict[str, Any]) -> float | None:
    for key in ("value", "suggestion", "suggested_lr", "max_lr"):
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    suggestions = data.get("suggestions")
    if isinstance(suggestions, dict):
        for value in suggestions.values():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def plot_lr_finder(runs: Sequence[RunRecord]) -> bytes | None:
    """LR-finder curves (loss against LR, log scale) of the runs that resolved an "auto" LR."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    drawn = False
    colors = {name: _COLORS[index % len(_COLORS)] for index, name in enumerate(_groups(runs))}
    # The same sweep shared by several runs (one finder result handed to several policies) is drawn once.
    curves: dict[tuple, tuple[np.ndarray, np.ndarray, float | None, list[RunRecord]]] = {}
    for run in runs:
        if not run.lr_finder:
            continue
        lrs, losses = _finder_arrays(run.lr_finder)
        if lrs.size < 2:
            continue
        key = (tuple(np.round(lrs, 12)), tuple(np.round(losses, 9)))
        if key not in curves:
            curves[key] = (lrs, losses, _suggested_lr(run.lr_finder), [])
        curves[key][3].append(run)
    for lrs, losses, chosen, members in curves.values():
        color = colors[members[0].name]
        if len(members) == 1:
            label = f"{members[0].name} seed {members[0].seed}"
        else:  # one curve is one sweep, however many runs took their LR from it
            label = (
                ", ".join(dict.fromkeys(run.name for run in members))
                + f" (1 sweep, used by {len(members)} runs)"
            )
        ax.plot(lrs, losses, color=color, alpha=0.8, linewidth=1.2, label=label)
        if chosen:
            ax.axvline(chosen, color=color, linestyle="--", linewidth=0.8)
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    ax.set_title("LR range test (dashed: LR used)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(figure)


def comparison_plots(runs: Sequence[RunRecord], metric: str | None = "val_accuracy") -> dict[str, bytes]:
    """All plots for a set of runs as ``{file name: PNG bytes}`` (plots without data are left out).

    Failed runs are drawn too (their curves show where they went wrong) only when no usable run of the
    configuration exists; otherwise only usable runs are used.
    """
    usable_names = {run.name for run in runs if run.usable}
    selected = [run for run in runs if run.usable or run.name not in usable_names]
    plots: dict[str, bytes | None] = {
        "schedules.png": plot_schedules(selected),
        "loss_vs_step.png": plot_curves(
            selected,
            source="train",
            key="loss",
            axis="step",
            title="training loss vs steps (smoothed; mean, min–max band)",
        ),
        "loss_vs_time.png": plot_curves(
            selected,
            source="train",
            key="loss",
            axis="time",
            title="training loss vs wall time (smoothed; mean, min–max band)",
        ),
    }
    if metric:
        plots[f"{metric}_vs_step.png"] = plot_curves(selected, source="eval", key=metric, axis="step")
        plots[f"{metric}_vs_time.png"] = plot_curves(selected, source="eval", key=metric, axis="time")
    plots["lr_finder.png"] = plot_lr_finder(selected)
    plots["lr_race.png"] = plot_lr_race(selected)
    return {name: data for name, data in plots.items() if data is not None}


def plot_lr_race(runs: Sequence[RunRecord]) -> bytes | None:
    """The LR race of each configuration that chose ``max_lr="auto"`` by racing: validation loss against
    max_lr, one line per round (the first seed's race; the chosen value dashed)."""
    # One race handed to several configurations (the demo shares one) is drawn once, titled with all of them.
    by_race: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for run in runs:
        selection = run.lr_selection or {}
        if not selection.get("entries"):
            continue
        key = json.dumps([selection.get("value"), selection["entries"]], sort_keys=True)
        names, _ = by_race.setdefault(key, ([], selection))
        if run.name not in names:
            names.append(run.name)
    races = {", ".join(names): selection for names, selection in by_race.values()}
    if not races:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(races), figsize=(4.2 * len(races), 3.6), squeeze=False)
    for ax, (name, selection) in zip(axes[0], races.items()):
        entries = selection["entries"]
        for index, round_index in enumerate(sorted({entry["round"] for entry in entries})):
            members = sorted((e for e in entries if e["round"] == round_index), key=lambda e: e["lr"])
            shown = [e for e in members if e.get("score") is not None]
            ax.plot(
                [e["lr"] for e in shown],
                [e["score"] for e in shown],
                marker="o",
                color=_COLORS[index % len(_COLORS)],
                label=f"round {round_index + 1} ({members[0]['steps']} steps)",
            )
            for entry in members:
                if entry.get("score") is None:  # diverged: marked where it would be, kept off the scale
                    ax.axvline(entry["lr"], color="#d62728", linestyle=":", linewidth=0.8)
        ax.axvline(float(selection["value"]), color="black", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("max_lr")
        ax.set_ylabel("validation loss (held-out training split)")
        ax.set_title(f"{name}: max_lr = {float(selection['value']):.3g}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)
