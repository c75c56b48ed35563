"""Super-convergence on MNIST-1D: accuracy and steps to a target at budgets from 1/4x to 1x of the reference.

    python benchmarks/super_convergence.py              # 3 seeds: 3 reference runs + 12 one-cycle runs
    python benchmarks/super_convergence.py --smoke      # seconds: 1 seed, budgets of 40 and 80 steps

The claim under test (Smith & Topin 2017): one-cycle reaches the accuracy of a well-tuned constant LR in a
fraction of the iterations. Reference: the published recipe, Adam at a constant 1e-2, batch 100, 6000 steps
(``configs/experiments/mnist1d_reference.toml``). A constant LR does not depend on the budget, so one
6000-step run per seed gives the reference at every budget: its test accuracy after N steps is what a run
of N steps reaches. Candidate: the same CNN and optimizer with one-cycle and ``max_lr = "auto"`` (the LR
race, on a validation split carved from the training data) at each budget N of 1500, 3000, 4500 and 6000
steps (``configs/experiments/mnist1d_one_cycle_auto.toml`` with ``train.total_steps = N``): one-cycle's
shape depends on N, so every budget is its own run. Both evaluate on the test split after every epoch
(40 steps); nothing is selected on it.

Reported per budget: test accuracy at the end of the budget (mean ± std over seeds, Welch test and
bootstrap CI of one-cycle minus the reference at that step), and the steps each recipe needs to first reach
``--target`` (default 92 %). Runs go through ``cadence compare`` (one process per run, finished runs are
skipped when the script is started again). Results: benchmarks/results/super_convergence.md (+ .json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, format_mean_std, machine, run_compare, significance

REFERENCE = "configs/experiments/mnist1d_reference.toml"
CANDIDATE = "configs/experiments/mnist1d_one_cycle_auto.toml"
BUDGETS = (1500, 3000, 4500, 6000)


def curves(out: Path) -> dict[int, list[tuple[int, float]]]:
    """seed -> [(step, test accuracy)] of every finished run under ``out/runs``."""
    from cadence.tracking.records import find_run_dirs, load_run

    result = {}
    for path in find_run_dirs([out / "runs"]):
        run = load_run(path)
        if not run.usable:
            continue
        seed = int(path.name.split("-")[-1])
        result[seed] = [(int(r["step"]), float(r["val_accuracy"])) for r in run.evals if "val_accuracy" in r]
    return result


def accuracy_at(curve: list[tuple[int, float]], step: int) -> float:
    """The accuracy of the last evaluation at or before ``step``."""
    return [accuracy for at, accuracy in curve if at <= step][-1]


def steps_to(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((at for at, accuracy in curve if accuracy >= target), None)


def describe_steps(values: list[int | None]) -> str:
    reached = [value for value in values if value is not None]
    if not reached:
        return f"0/{len(values)}"
    mean = statistics.mean(reached)
    spread = f" ± {statistics.stdev(reached):.0f}" if len(reached) > 1 else ""
    return f"{len(reached)}/{len(values)}: {mean:.0f}{spread}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.92)
    parser.add_argument("--out", type=Path, default=ROOT / "cadence-runs" / "super-convergence")
    parser.add_argument("--output", type=Path, default=RESULTS / "super_convergence.md")
    parser.add_argument("--smoke", action="store_true", help="1 seed, budgets of 40 and 80 steps")
    args = parser.parse_args(argv)
    budgets = BUDGETS
    if args.smoke:
        args.seeds, budgets = 1, (40, 80)
        args.out = args.out.with_name(args.out.name + "-smoke")
    started = datetime.datetime.now(datetime.timezone.utc)
    common = ['train.progress="off"', "train.eval_every_epochs=1"]
    target = f"val_accuracy={args.target}"
    run_compare(
        [REFERENCE],
        seeds=args.seeds,
        jobs=args.jobs,
        out=args.out / "reference",
        target=target,
        overrides=[*common, f"train.total_steps={max(budgets)}"],
    )
    for budget in budgets:
        run_compare(
            [CANDIDATE],
            seeds=args.seeds,
            jobs=args.jobs,
            out=args.out / f"one_cycle_{budget}",
            target=target,
            overrides=[*common, f"train.total_steps={budget}"],
        )
    reference = curves(args.out / "reference")
    record: dict = {"date": f"{started:%Y-%m-%d %H:%M} UTC", "target": args.target, "budgets": {}}
    rows = [
        f"| budget (steps) | × reference | reference: test acc. at that step (%) | one-cycle auto (%) "
        f"| one-cycle − reference | one-cycle reached {100 * args.target:.0f}% (runs: mean steps) |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for budget in budgets:
        candidate = curves(args.out / f"one_cycle_{budget}")
        seeds = sorted(set(reference) & set(candidate))
        ref = [accuracy_at(reference[seed], budget) for seed in seeds]
        mine = [candidate[seed][-1][1] for seed in seeds]
        statement = significance(mine, ref, f"one-cycle {budget}", "reference", "accuracy") if seeds else ""
        record["budgets"][budget] = {
            "seeds": seeds,
            "reference": ref,
            "one_cycle": mine,
            "one_cycle_steps_to_target": [steps_to(candidate[seed], args.target) for seed in seeds],
            "statement": statement,
        }
        difference = 100 * (statistics.mean(mine) - statistics.mean(ref)) if seeds else float("nan")
        rows.append(
            f"| {budget} | {budget / max(budgets):.2f} | {format_mean_std(ref) if seeds else '—'} "
            f"| {format_mean_std(mine) if seeds else '—'} | {difference:+.2f} "
            f"| {describe_steps(record['budgets'][budget]['one_cycle_steps_to_target'])} |"
        )
    reference_steps = [steps_to(reference[seed], args.target) for seed in sorted(reference)]
    record["reference_steps_to_target"] = reference_steps
    lines = [
        "# Super-convergence on MNIST-1D: one-cycle with the auto LR at 1/4x to 1x of the reference budget",
        "",
        f"- date: {record['date']}; machine: {machine()}; {args.seeds} seeds (0..{args.seeds - 1})",
        "- command: `python benchmarks/super_convergence.py" + (" --smoke" if args.smoke else "") + "`",
        f"- reference: Adam 1e-2 constant, batch 100, {max(budgets)} steps; it reached "
        f"{100 * args.target:.0f}% in {describe_steps(reference_steps)} steps (runs that reached it: mean)",
        '- one-cycle: the same CNN and Adam, `max_lr = "auto"`, one run per budget; test split evaluated '
        "every 40 steps",
        "",
        *rows,
        "",
        *[f"- {entry['statement']}" for entry in record["budgets"].values() if entry["statement"]],
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.smoke:
        args.output.write_text(report)
        args.output.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
