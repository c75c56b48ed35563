"""The record of an LR selection: every race entry, the sweep, the choice, its cost; JSON, text and plot.

Written to ``lr_selection.json`` / ``lr_selection.png`` in a run directory and reused when the run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError, MissingDependencyError, require
from cadence.lr_finder.result import LRFinderResult

__all__ = ["LRSelection", "RaceEntry", "load_selection", "plot_selection"]


@dataclasses.dataclass
class RaceEntry:
    """One candidate trained in one round: its LR, steps, validation loss and metrics, and how it ended."""

    lr: float
    round: int
    steps: int
    score: float
    metrics: dict[str, float]
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "round": self.round,
            "steps": self.steps,
            "score": self.score if math.isfinite(self.score) else None,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RaceEntry:
        score = data.get("score")
        return cls(
            lr=float(data["lr"]),
            round=int(data["round"]),
            steps=int(data["steps"]),
            score=math.inf if score is None else float(score),
            metrics={k: (math.nan if v is None else float(v)) for k, v in data.get("metrics", {}).items()},
            status=str(data.get("status", "completed")),
        )


@dataclasses.dataclass
class LRSelection:
    """The chosen ``value`` and how it was found: the sweep, the candidates, every race entry, the cost."""

    value: float
    method: str
    reason: str
    sweep: LRFinderResult
    candidates: list[float]
    entries: list[RaceEntry]
    run_steps: int
    sweep_steps: int
    race_steps: int
    options: dict[str, Any]

    @property
    def cost_fraction(self) -> float:
        """Optimizer steps spent choosing, as a fraction of one training run's steps."""
        return (self.sweep_steps + self.race_steps) / max(1, self.run_steps)

    def summary(self) -> str:
        """A plain-text account: the bracket, each round's table, the choice and its cost."""
        lines = [f"max_lr = {self.value:.4g} ({self.method}): {self.reason}"]
        rounds = sorted({entry.round for entry in self.entries})
        for index in rounds:
            members = [entry for entry in self.entries if entry.round == index]
            lines.append(f"round {index + 1}: {len(members)} candidates x {members[0].steps} steps")
            for entry in sorted(members, key=lambda entry: entry.lr):
                accuracy = entry.metrics.get("val_accuracy")
                shown = (
                    f"  val acc {100 * accuracy:5.1f}%"
                    if accuracy is not None and math.isfinite(accuracy)
                    else ""
                )
                marker = "  <- chosen" if index == rounds[-1] and entry.lr == self.value else ""
                lines.append(
                    f"  lr {entry.lr:10.4g}  val loss {entry.score:8.4f}{shown}  {entry.status}{marker}"
                )
        lines.append(
            f"cost: {self.sweep_steps} sweep + {self.race_steps} race steps = {self.cost_fraction:.2f} x one "
            f"run of {self.run_steps} steps"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "method": self.method,
            "reason": self.reason,
            "candidates": list(self.candidates),
            "entries": [entry.to_dict() for entry in self.entries],
            "cost": {
                "run_steps": self.run_steps,
                "sweep_steps": self.sweep_steps,
                "race_steps": self.race_steps,
                "fraction_of_run": self.cost_fraction,
            },
            "options": dict(self.options),
            "sweep": self.sweep.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LRSelection:
        cost = data.get("cost", {})
        return cls(
            value=float(data["value"]),
            method=str(data["method"]),
            reason=str(data.get("reason", "")),
            sweep=LRFinderResult.from_dict(data["sweep"]),
            candidates=[float(v) for v in data.get("candidates", [])],
            entries=[RaceEntry.from_dict(entry) for entry in data.get("entries", [])],
            run_steps=int(cost.get("run_steps", 0)),
            sweep_steps=int(cost.get("sweep_steps", 0)),
            race_steps=int(cost.get("race_steps", 0)),
            options=dict(data.get("options", {})),
        )

    def save_json(self, path: str | Path, **extra: Any) -> Path:
        """Write :meth:`to_dict` (plus ``extra`` keys) to ``path`` atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({**self.to_dict(), **extra}, indent=2, allow_nan=False) + "\n")
        temporary.replace(path)
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> LRSelection:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Two panels: the sweep with the candidates marked, and each round's validation loss against LR."""
        pyplot = require("matplotlib.pyplot", "plot", "plotting an LR selection")
        figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
        curve = self.sweep
        left.plot(curve.lrs, curve.losses, color="0.75", linewidth=1, label="loss")
        left.plot(curve.lrs, curve.smoothed_losses, color="C0", label="smoothed loss")
        for candidate in self.candidates:
            left.axvline(candidate, color="C1", alpha=0.35, linewidth=1)
        left.axvline(self.value, color="C3", linewidth=2, label=f"chosen {self.value:.3g}")
        left.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="LR range test")
        finite = [v for v in curve.smoothed_losses if math.isfinite(v)]
        if finite:  # the divergence at the end of a sweep would flatten the part that matters
            left.set_ylim(min(finite) * 0.9, min(max(finite), 1.5 * finite[0]) * 1.05)
        left.legend(fontsize=8)
        for index in sorted({entry.round for entry in self.entries}):
            members = sorted((e for e in self.entries if e.round == index), key=lambda e: e.lr)
            shown = [e for e in members if math.isfinite(e.score)]
            right.plot(
                [e.lr for e in shown],
                [e.score for e in shown],
                marker="o",
                label=f"round {index + 1} ({members[0].steps} steps)",
            )
            for entry in members:
                if not math.isfinite(entry.score):
                    right.axvline(entry.lr, color="C3", linestyle=":", alpha=0.6)
        right.axvline(self.value, color="C3", linewidth=2)
        right.set(xscale="log", xlabel="max_lr", ylabel="validation loss", title="LR race (held-out split)")
        if self.candidates:
            right.set_xticks(self.candidates, [f"{lr:.3g}" for lr in self.candidates], minor=False)
            right.set_xticks([], minor=True)
        if self.entries:
            right.legend(fontsize=8)
        figure.suptitle(
            title or f"max_lr = {self.value:.3g} ({self.method}, cost {self.cost_fraction:.2f} runs)"
        )
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        pyplot.close(figure)
        return path


def load_selection(path: str | Path) -> LRSelection | None:
    """The selection recorded at ``path``, or None when there is none; a damaged record is an error."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return LRSelection.load_json(path)
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{path} is not a valid LR selection record ({error}); delete it to choose again"
        ) from error


def plot_selection(selection: LRSelection, path: Path) -> Path | None:
    """Plot when matplotlib is installed; the JSON record is what matters."""
    try:
        return selection.plot(path)
    except MissingDependencyError:
        return None
