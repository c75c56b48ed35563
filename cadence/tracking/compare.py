"""Read run directories and compare configurations over seeds.

A run directory (written by the Trainer) holds ``meta.json``, ``metrics.jsonl`` and, once training ended,
``summary.json``. :func:`load_run` reads one, :func:`compare_runs` groups runs by configuration name and
computes, per group: final and best metrics as mean ± std (and min/max) over seeds, steps and wall time to a
target, total cost, and a significance statement against the first group. Runs that failed, diverged or
never finished are listed with their status and left out of the statistics. Reading runs lives in
:mod:`cadence.tracking.records` and the text tables in :mod:`cadence.tracking.tables`; both are re-exported
here.

Example::

    runs = [load_run(path) for path in Path("out/runs").glob("*/seed-*")]
    comparison = compare_runs(runs, target=("val_accuracy", 0.9))
    print(format_table(comparison))
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError
from cadence.tracking.records import USABLE_STATUSES, RunRecord, _is_number, find_run_dirs, load_run
from cadence.tracking.stats import compare_samples, higher_is_better, summarize
from cadence.tracking.tables import format_cell, format_table, table_rows

__all__ = [
    "USABLE_STATUSES",
    "RunRecord",
    "compare_runs",
    "find_run_dirs",
    "format_cell",
    "format_table",
    "load_run",
    "parse_target",
    "stale_run",
    "table_rows",
    "time_to_target",
    "write_results_json",
]


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


def stale_run(
    run_dir: str | Path,
    expected_fingerprint: Callable[[], Mapping[str, Any] | None],
    *,
    require_fingerprint: bool = False,
) -> str | None:
    """Why the run in ``run_dir`` must run again, else ``None``.

    ``expected_fingerprint()`` is the fingerprint (without data files) a run would record now, or ``None``
    when it cannot be known; it is called only when the run recorded a fingerprint. ``cadence compare``
    passes ``lambda: cadence.config.fingerprint.expected_fingerprint(config, overrides)``, so the run records
    know nothing of configs. A run is stale when the fingerprint it recorded differs from the expected one
    (an edited config file, another ``--set``, another cadence version) or a data file it read changed or is
    gone. A finished run without a recorded fingerprint (older cadence) is kept, as it cannot be checked;
    with ``require_fingerprint`` (an interrupted run, which ``cadence train --resume`` would refuse) it is
    stale.
    """
    from cadence.tracking.fingerprint import recorded_fingerprint, stale_reason

    if recorded_fingerprint(run_dir) is None:
        return "it has no fingerprint (recorded by an older cadence)" if require_fingerprint else None
    return stale_reason(run_dir, expected_fingerprint())


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
                # the run's runs in experiment trackers (meta.json "trackers"): IDs, URIs, URLs
                "trackers": dict(run.meta.get("trackers") or {}),
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
