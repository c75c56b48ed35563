"""The result of an LR range test: curves, suggestions, how far to trust them, JSON and plot."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadence.errors import require
from cadence.lr_finder.suggestions import METHODS, finite_prefix

__all__ = ["LRCurve", "LRFinderResult", "Trust", "assess_trust"]

#: Thresholds of the trust verdict, in decades (powers of ten) of learning rate.
HIGH_AGREEMENT = 1.0
MEDIUM_AGREEMENT = 1.5
HIGH_SPREAD = 0.15
MEDIUM_SPREAD = 0.3


def _to_json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _from_json_number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


@dataclass
class LRCurve:
    """One sweep: the learning rates tried, raw and smoothed losses, why it stopped, its suggestions."""

    lrs: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    stop_reason: str
    suggestions: dict[str, float]
    repeat: int = 0
    weight_decay: float | None = None

    @property
    def min_loss(self) -> float:
        """Lowest finite smoothed loss (``nan`` for an empty curve)."""
        _, smoothed = finite_prefix(self.lrs, self.smoothed_losses)
        return float(smoothed.min()) if smoothed.size else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "lrs": [float(v) for v in self.lrs],
            "losses": [_to_json_number(v) for v in self.losses],
            "smoothed_losses": [_to_json_number(v) for v in self.smoothed_losses],
            "stop_reason": self.stop_reason,
            "suggestions": dict(self.suggestions),
            "repeat": self.repeat,
            "weight_decay": self.weight_decay,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRCurve:
        return cls(
            lrs=[float(v) for v in data["lrs"]],
            losses=[_from_json_number(v) for v in data["losses"]],
            smoothed_losses=[_from_json_number(v) for v in data["smoothed_losses"]],
            stop_reason=str(data["stop_reason"]),
            suggestions={k: float(v) for k, v in data["suggestions"].items()},
            repeat=int(data.get("repeat", 0)),
            weight_decay=data.get("weight_decay"),
        )


@dataclass
class Trust:
    """How much a suggestion can be trusted.

    ``agreement_decades`` is ``log10(max / min)`` over the methods' suggestions: 0 means all rules agree.
    With several repeats (different data orders), ``spread_log10_std`` is the standard deviation of
    ``log10`` of the chosen method's suggestion across repeats and ``geometric_mean`` its geometric mean.
    ``verdict`` is "high", "medium" or "low" and ``message`` says why in one line.
    """

    agreement_decades: float
    verdict: str
    message: str
    geometric_mean: float | None = None
    spread_log10_std: float | None = None
    repeat_values: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agreement_decades": _to_json_number(self.agreement_decades),
            "verdict": self.verdict,
            "message": self.message,
            "geometric_mean": self.geometric_mean,
            "spread_log10_std": self.spread_log10_std,
            "repeat_values": list(self.repeat_values),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trust:
        return cls(
            agreement_decades=_from_json_number(data["agreement_decades"]),
            verdict=str(data["verdict"]),
            message=str(data["message"]),
            geometric_mean=data.get("geometric_mean"),
            spread_log10_std=data.get("spread_log10_std"),
            repeat_values=[float(v) for v in data.get("repeat_values", [])],
        )


def assess_trust(suggestions: dict[str, float], curves: list[LRCurve], method: str) -> Trust:
    """Judge a suggestion from the agreement between methods and the spread over repeated sweeps.

    Verdict: "high" when the methods agree within 1 decade and (with repeats) the repeats' log10 standard
    deviation is at most 0.15; "low" when the methods disagree by more than 1.5 decades, the repeats spread
    by more than 0.3 decades, or the loss never clearly fell; "medium" otherwise (also when the loss was still
    falling at ``end_lr``, so the curve's minimum was not seen).
    """
    values = [v for v in suggestions.values() if v > 0]
    agreement = math.log10(max(values) / min(values)) if values else float("inf")
    reasons: list[str] = [f"methods agree within {agreement:.2f} decades"]
    verdict = "high" if agreement <= HIGH_AGREEMENT else "medium" if agreement <= MEDIUM_AGREEMENT else "low"

    repeat_values = [c.suggestions[method] for c in curves if method in c.suggestions]
    geometric_mean = spread = None
    if len(repeat_values) > 1:
        logs = np.log10(repeat_values)
        geometric_mean = float(10 ** logs.mean())
        spread = float(logs.std(ddof=1))
        reasons.append(f"{len(repeat_values)} data orders spread ±{spread:.2f} decades")
        if spread > MEDIUM_SPREAD:
            verdict = "low"
        elif spread > HIGH_SPREAD and verdict == "high":
            verdict = "medium"
    else:
        reasons.append("one data order (repeats=3 measures the spread)")

    first = curves[0] if curves else None
    if first is not None:
        _, smoothed = finite_prefix(first.lrs, first.smoothed_losses)
        if smoothed.size < 3 or smoothed.min() > 0.98 * smoothed[0]:
            verdict = "low"
            reasons.append("the loss never clearly fell: lower start_lr or check the model")
        elif first.stop_reason == "completed" and int(np.argmin(smoothed)) >= smoothed.size - 2:
            verdict = "low" if verdict == "low" else "medium"
            reasons.append("the loss was still falling at end_lr: raise end_lr")
    return Trust(
        agreement_decades=agreement,
        verdict=verdict,
        message=f"{verdict}: " + "; ".join(reasons),
        geometric_mean=geometric_mean,
        spread_log10_std=spread,
        repeat_values=repeat_values,
    )


@dataclass
class LRFinderResult:
    """Outcome of :func:`cadence.lr_finder.find_lr`.

    ``lrs``, ``losses`` and ``smoothed_losses`` are the main curve (the first data order, of the chosen weight
    decay in a weight-decay sweep); ``curves`` holds every sweep. ``suggestions`` maps each method to its LR
    (the geometric mean over repeats when ``repeats > 1``); ``suggestion`` is the value of ``method``.
    """

    lrs: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    suggestions: dict[str, float]
    method: str
    trust: Trust
    stop_reason: str
    curves: list[LRCurve] = field(default_factory=list)
    weight_decay: float | None = None
    weight_decay_summary: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def suggestion(self) -> float:
        """The suggested learning rate of ``method`` (falls back to the next available method)."""
        for name in (self.method, *METHODS):
            if name in self.suggestions:
                return self.suggestions[name]
        return float("nan")

    # ----------------------------------------------------------------------------------------- text
    def summary(self) -> str:
        """A plain-text table of the suggestions, the trust verdict and the weight-decay sweep if any."""
        lines = [f"{'method':<10} {'lr':>10}", f"{'-' * 10} {'-' * 10}"]
        for name in METHODS:
            if name in self.suggestions:
                marker = "  <- suggestion" if name == self.method else ""
                lines.append(f"{name:<10} {self.suggestions[name]:>10.3g}{marker}")
        if self.weight_decay_summary:
            lines += ["", f"{'weight_decay':>12} {'min loss':>10} {'lr':>10}"]
            for row in self.weight_decay_summary:
                marker = "  <- chosen" if row["weight_decay"] == self.weight_decay else ""
                decay, loss, lr = row["weight_decay"], row["min_loss"], row["suggestion"]
                lines.append(f"{decay:>12.3g} {loss:>10.4g} {lr:>10.3g}{marker}")
        lines += ["", f"trust: {self.trust.message}", f"sweep stopped: {self.stop_reason}"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    # ----------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data (non-finite losses become ``null``)."""
        return {
            "suggestion": _to_json_number(self.suggestion),
            "method": self.method,
            "suggestions": dict(self.suggestions),
            "trust": self.trust.to_dict(),
            "stop_reason": self.stop_reason,
            "lrs": [float(v) for v in self.lrs],
            "losses": [_to_json_number(v) for v in self.losses],
            "smoothed_losses": [_to_json_number(v) for v in self.smoothed_losses],
            "weight_decay": self.weight_decay,
            "weight_decay_summary": [dict(row) for row in self.weight_decay_summary],
            "options": dict(self.options),
            "curves": [curve.to_dict() for curve in self.curves],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRFinderResult:
        return cls(
            lrs=[float(v) for v in data["lrs"]],
            losses=[_from_json_number(v) for v in data["losses"]],
            smoothed_losses=[_from_json_number(v) for v in data["smoothed_losses"]],
            suggestions={k: float(v) for k, v in data["suggestions"].items()},
            method=str(data["method"]),
            trust=Trust.from_dict(data["trust"]),
            stop_reason=str(data["stop_reason"]),
            curves=[LRCurve.from_dict(c) for c in data.get("curves", [])],
            weight_decay=data.get("weight_decay"),
            weight_decay_summary=[dict(row) for row in data.get("weight_decay_summary", [])],
            options=dict(data.get("options", {})),
        )

    def save_json(self, path: str | Path, **extra: Any) -> Path:
        """Write :meth:`to_dict` (plus any ``extra`` top-level keys) to ``path`` as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**self.to_dict(), **extra}
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
        temporary.replace(path)
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> LRFinderResult:
        """Read a result written by :meth:`save_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    # ----------------------------------------------------------------------------------------- plot
    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Draw loss against LR (log axis) with the suggestions marked, and save it to ``path``.

        In a weight-decay sweep every weight decay gets its own colour. Needs matplotlib (``cadence[plot]``).
        """
        require("matplotlib", "plot", "plotting the LR finder curve")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7.0, 4.5), layout="constrained")
        axes = figure.add_subplot()
        colors = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
        decays = sorted({c.weight_decay for c in self.curves}, key=lambda v: -1.0 if v is None else v)
        for curve in self.curves:
            color = colors[decays.index(curve.weight_decay) % len(colors)]
            lr_array, smoothed = finite_prefix(curve.lrs, curve.smoothed_losses)
            label = None
            if curve.repeat == 0:
                label = (
                    "smoothed loss" if curve.weight_decay is None else f"weight_decay={curve.weight_decay:g}"
                )
            axes.plot(lr_array, smoothed, color=color, alpha=1.0 if curve.repeat == 0 else 0.45, label=label)
        lr_array, raw = finite_prefix(self.lrs, self.losses)
        axes.plot(lr_array, raw, color="0.6", linewidth=0.6, alpha=0.6, label="raw loss", zorder=0)
        main_lrs, main_smoothed = finite_prefix(self.lrs, self.smoothed_losses)
        markers = {"valley": ("o", "C3"), "steepest": ("^", "C2"), "minimum": ("s", "C4")}
        for name, value in self.suggestions.items():
            marker, color = markers.get(name, ("x", "k"))
            y = float(np.interp(np.log10(value), np.log10(main_lrs), main_smoothed)) if main_lrs.size else 0.0
            emphasis = name == self.method
            axes.axvline(value, color=color, linestyle="--" if emphasis else ":", linewidth=1.0)
            axes.plot(
                [value],
                [y],
                marker=marker,
                color=color,
                markersize=9 if emphasis else 6,
                linestyle="",
                label=f"{name}: {value:.2g}" + (" (suggestion)" if emphasis else ""),
            )
        if main_smoothed.size:
            low = float(min(c.min_loss for c in self.curves) if self.curves else main_smoothed.min())
            high = float(main_smoothed[: max(1, main_smoothed.size // 10)].max())
            margin = 0.1 * max(high - low, 1e-12)
            axes.set_ylim(low - margin, high + 3 * margin)
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("validation loss" if self.options.get("val_data") else "training loss")
        axes.set_title(title or f"LR range test — trust {self.trust.verdict}")
        axes.legend(fontsize="small")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        return path
