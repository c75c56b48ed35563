"""Read run directories and compare configurations over seeds.

A run directory (written by the Trainer) holds ``meta.json``, ``metrics.jsonl`` and, once training ended,
``summary.json``. :func:`load_run` reads one, :func:`compare_runs` groups runs by configuration name and
computes, per group: final and best metrics as mean ± std (and min/max) over seeds, steps and wall time to a
target, total cost, and a significance statement against the first group. Runs that failed, diverged or
never finished are listed with their status and left out of the statistics.

Example::

    runs = [load_run(path) for path in Path("out/runs").glob("*/seed-*")]
    comparison = compare_runs(runs, target=("val_accuracy", 0.9))
    print(format_table(comparison))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError
from cadence.tracking.stats import compare_samples, higher_is_better, summarize

__all__ = [
    "USABLE_STATUSES",
    "RunRecord",
    "compare_runs",
    "find_run_dirs",
    "format_table",
    "load_run",
    "parse_target",
    "time_to_target",
    "write_results_json",
]

#: Runs with one of these statuses enter the statistics; every other status is listed but left out.
#: "stopped" is a run a callback ended on purpose (early stopping): its metrics are real.
USABLE_STATUSES: tuple[str, ...] = ("completed", "stopped")

_SEED_DIR = re.compile(r"^seed[-_]?(\d+)$")


@dataclass
class RunRecord:
    """Everything compare needs from one run directory."""

    path: Path
    name: str
    seed: int | None
    status: str
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    lr_finder: dict[str, Any] | None = None

    @property
    def usable(self) -> bool:
        """True when the run finished normally and has a summary."""
        return self.status in USABLE_STATUSES and self.summary is not None

    @property
    def steps(self) -> int | None:
        if self.summary and self.summary.get("steps") is not None:
            return int(self.summary["steps"])
        if self.train:
            return int(self.train[-1]["step"])
        return None

    @property
    def wall_time(self) -> float | None:
        for source in (self.summary or {}, self.meta):
            if source.get("wall_time") is not None:
                return float(source["wall_time"])
        if self.train:
            return float(self.train[-1].get("time", math.nan))
        return None

    def final(self) -> dict[str, float]:
        """Final metrics: ``summary["final"]``, else the last evaluation."""
        if self.summary and self.summary.get("final"):
            return {key: float(value) for key, value in self.summary["final"].items() if _is_number(value)}
        if self.evals:
            return _metric_values(self.evals[-1])
        return {}

    def best(self) -> dict[str, float]:
        """Best metrics: ``summary["best"]``, else the best over evaluations (direction from the name)."""
        if self.summary and self.summary.get("best"):
            return {key: float(value) for key, value in self.summary["best"].items() if _is_number(value)}
        best: dict[str, float] = {}
        for record in self.evals:
            for key, value in _metric_values(record).items():
                if key not in best:
                    best[key] = value
                elif higher_is_better(key):
                    best[key] = max(best[key], value)
                else:
                    best[key] = min(best[key], value)
        return best


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_values(record: dict[str, Any]) -> dict[str, float]:
    skip = {"kind", "step", "epoch", "time"}
    return {key: float(value) for key, value in record.items() if key not in skip and _is_number(value)}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a file cut short by a crash reads as missing
    return value if isinstance(value, dict) else None


def _read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    if not path.exists():
        return train, evals
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run may be cut short
            if not isinstance(record, dict) or "step" not in record:
                continue
            if record.get("kind") == "eval":
                evals.append(record)
            elif record.get("kind", "train") == "train":
                train.append(record)
    return train, evals


def _default_name(path: Path, meta: dict[str, Any]) -> str:
    if _SEED_DIR.match(path.name):
        return path.parent.name
    if meta.get("name"):
        return str(meta["name"])
    return path.name


def load_run(path: str | Path, name: str | None = None) -> RunRecord:
    """Read one run directory.

    The group name is ``name`` when given, else the parent directory's name for run directories called
    ``seed-N`` (the layout ``cadence compare`` writes), else ``meta["name"]``, else the directory's name.
    The status is the summary's, else the metadata's ("running" without a summary reads as "incomplete"),
    else "missing" when the directory holds no run at all.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory not found: {path}")
    meta = _read_json(path / "meta.json") or {}
    summary = _read_json(path / "summary.json")
    train, evals = _read_metrics(path / "metrics.jsonl")
    if summary is not None and summary.get("status"):
        status = str(summary["status"])
    elif meta.get("status"):
        status = str(meta["status"])
        if status in ("running", *USABLE_STATUSES):
            status = "incomplete"  # no summary: the process ended before fit finished
    else:
        status = "missing"
    seed = meta.get("seed")
    if seed is None:
        match = _SEED_DIR.match(path.name)
        seed = int(match.group(1)) if match else None
    return RunRecord(
        path=path,
        name=name or _default_name(path, meta),
        seed=int(seed) if seed is not None else None,
        status=status,
        error=meta.get("error") or (summary or {}).get("error"),
        meta=meta,
        summary=summary,
        train=train,
        evals=evals,
        lr_finder=_read_json(path / "lr_finder.json"),
    )


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path to the run directories under it (a directory holding ``meta.json``).

    A path that is a run directory is kept as is; otherwise it is searched recursively, so ``--runs out``
    picks up ``out/runs/<config>/seed-<s>``.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"run directory not found: {path}")
        if (path / "meta.json").exists() or (path / "summary.json").exists():
            found.append(path)
            continue
        below = sorted({meta.parent for meta in path.rglob("meta.json")})
        if not below:
            raise ConfigError(f"--runs {path}: no run directories (with meta.json) found under it")
        found.extend(below)
    return found


def parse_target(text: str) -> tuple[str, float]:
    """Parse ``"val_accuracy=0.9"`` into ``("val_accuracy", 0.9)``."""
    metric, separator, value = text.partition("=")
    if not separator or not metric.strip():
        raise ConfigError(f"--target must look like METRIC=VALUE (e.g. val_accuracy=0.9), got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--target value must be a number, got {value!r} in {text!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"--target value must be finite, got {text!r}")
    return metric.strip(), number


def time_to_target(run: RunRecord, metric: str, value: float) -> tuple[int | None, float | None]:
    """``(step, seconds)`` of the first evaluation reaching ``value`` (``>=``, or ``<=`` for losses).

    ``(None, None)`` when the run never reached it. Seconds count from the start of fit (the ``time`` field).
    """
    upward = higher_is_better(metric)
    for record in run.evals:
        observed = record.get(metric)
        if not _is_number(observed):
            continue
        if (observed >= value) if upward else (observed <= value):
            time = record.get("time")
            return int(record["step"]), float(time) if _is_number(time) else None
    return None, None


def _primary_metric(runs: Sequence[RunRecord], target: tuple[str, float] | None) -> str | None:
    if target is not None:
        return target[0]
    names: list[str] = []
    for run in runs:
        for key in run.final():
            if key not in names:
                names.append(key)
    for preferred in ("val_accuracy", "accuracy", "ensemble_accuracy"):
        if preferred in names:
            return preferred
    val_names = [name for name in names if name.startswith("val_")]
    return (val_names or names or [None])[0]


def _ordered_groups(runs: Sequence[RunRecord], order: Sequence[str] | None) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = {}
    for name in order or ():
        groups.setdefault(name, [])
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    for members in groups.values():
        members.sort(
            key=lambda run: (run.seed is None, run.seed if run.seed is not None else 0, str(run.path))
        )
    return groups


def _summary_extra_metrics(run: RunRecord) -> dict[str, float]:
    """Numbers that callbacks put under ``summary["extra"]`` (e.g. the snapshot ensemble's accuracy)."""
    extra = (run.summary or {}).get("extra") or {}
    values: dict[str, float] = {}
    for key, value in extra.items():
        if _is_number(value):
            values[key] = float(value)
        elif isinstance(value, dict):
            for inner, number in value.items():
                if _is_number(number):
                    values[f"{key}.{inner}"] = float(number)
    return values


def compare_runs(
    runs: Sequence[RunRecord],
    *,
    target: tuple[str, float] | None = None,
    order: Sequence[str] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Group runs by name and compute the comparison (a JSON-serialisable dict, see ``results.json``).

    Per group: ``final`` / ``best`` metric summaries (mean, std, min, max, n) over usable runs,
    ``extra`` (numbers from ``summary["extra"]``), ``steps`` and ``wall_time`` summaries, ``total_cost``
    (summed wall time of all runs, including failed ones, in seconds), ``target`` (steps and seconds to the
    target over the runs that reached it, and how many did), and ``runs`` (one entry per run with its
    status). ``significance`` compares every group against the first on the primary metric (the target's
    metric, else ``val_accuracy``) using final values.
    """
    groups = _ordered_groups(runs, order)
    if not groups:
        raise ConfigError("nothing to compare: no runs given")
    metric = _primary_metric([run for run in runs if run.usable], target)
    result: dict[str, Any] = {
        "primary_metric": metric,
        "target": {"metric": target[0], "value": target[1]} if target else None,
        "groups": [],
        "significance": [],
        "failed_runs": [],
    }
    finals_by_group: dict[str, list[float]] = {}
    for name, members in groups.items():
        usable = [run for run in members if run.usable]
        finals: dict[str, list[float]] = {}
        bests: dict[str, list[float]] = {}
        extras: dict[str, list[float]] = {}
        for run in usable:
            for key, value in run.final().items():
                finals.setdefault(key, []).append(value)
            for key, value in run.best().items():
                bests.setdefault(key, []).append(value)
            for key, value in _summary_extra_metrics(run).items():
                extras.setdefault(key, []).append(value)
        run_entries = []
        target_steps: list[float] = []
        target_seconds: list[float] = []
        for run in members:
            entry: dict[str, Any] = {
                "path": str(run.path),
                "seed": run.seed,
                "status": run.status,
                "usable": run.usable,
                "steps": run.steps,
                "wall_time": run.wall_time,
                "final": run.final() if run.usable else {},
                "error": run.error,
            }
            if target and run.usable:
                step, seconds = time_to_target(run, *target)
                entry["target_step"], entry["target_seconds"] = step, seconds
                if step is not None:
                    target_steps.append(step)
                if seconds is not None:
                    target_seconds.append(seconds)
            run_entries.append(entry)
            if not run.usable:
                result["failed_runs"].append(
                    {
                        "group": name,
                        "seed": run.seed,
                        "path": str(run.path),
                        "status": run.status,
                        "error": run.error,
                    }
                )
        wall_times = [run.wall_time for run in members if run.wall_time is not None]
        group: dict[str, Any] = {
            "name": name,
            "runs_total": len(members),
            "runs_usable": len(usable),
            "schedules": (usable or members or [RunRecord(Path("."), name, None, "missing")])[0].meta.get(
                "schedules", {}
            ),
            "final": {key: summarize(values).to_dict() for key, values in finals.items()},
            "best": {key: summarize(values).to_dict() for key, values in bests.items()},
            "extra": {key: summarize(values).to_dict() for key, values in extras.items()},
            "steps": summarize([run.steps for run in usable if run.steps is not None]).to_dict(),
            "wall_time": summarize([run.wall_time for run in usable if run.wall_time is not None]).to_dict(),
            "total_cost_seconds": float(sum(value for value in wall_times if math.isfinite(value))),
            "runs": run_entries,
        }
        if target:
            group["target"] = {
                "reached": len(target_steps),
                "of": len(usable),
                "steps": summarize(target_steps).to_dict(),
                "seconds": summarize(target_seconds).to_dict(),
            }
        result["groups"].append(group)
        if metric is not None:
            finals_by_group[name] = finals.get(metric, [])
    names = list(groups)
    if metric is not None and len(names) > 1:
        baseline = names[0]
        for name in names[1:]:
            result["significance"].append(
                compare_samples(
                    name,
                    finals_by_group[name],
                    baseline,
                    finals_by_group[baseline],
                    metric=metric,
                    alpha=alpha,
                    seed=seed,
                )
            )
    return _finite_json(result)


def _finite_json(value: Any) -> Any:
    """Replace NaN/inf by None so that results.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_json(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(inner) for inner in value]
    return value


def write_results_json(comparison: dict[str, Any], path: str | Path) -> Path:
    """Write the comparison as strict JSON (NaN written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite_json(comparison), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------------
# Plain-text tables


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


def table_rows(comparison: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table (one row per group)."""
    metric = comparison.get("primary_metric")
    target = comparison.get("target")
    header = ["config", "runs"]
    if metric:
        header += [f"final {metric}", f"best {metric}", f"min–max final {metric}"]
    other_metrics = []
    for group in comparison["groups"]:
        for key in group["final"]:
            if key != metric and key.startswith("val_") and key not in other_metrics:
                other_metrics.append(key)
    header += [f"final {key}" for key in other_metrics]
    extra_keys: list[str] = []
    for group in comparison["groups"]:
        for key in group.get("extra", {}):
            if "accuracy" in key and key not in extra_keys:
                extra_keys.append(key)
    header += extra_keys
    if target:
        header += [f"steps to {target['metric']}≥{target['value']:g}", "seconds to target"]
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
            f"{group['total_cost_seconds']:.1f}",
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
