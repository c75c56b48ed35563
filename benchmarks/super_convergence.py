"""Super-convergence: accuracy and steps to a target at budgets from 1/4x to 1x of the reference.

    python benchmarks/super_convergence.py              # MNIST-1D, 3 seeds: 3 reference + 12 one-cycle runs
    python benchmarks/super_convergence.py --task fashion   # Fashion-MNIST 60k, the tutorial's cnn28 + SGD
    python benchmarks/super_convergence.py --smoke      # seconds: 1 seed, budgets of 40 and 80 steps

``--task fashion``: the reference is the cyclical-LR tutorial's constant SGD 0.01 for 10 epochs
(``configs/fashion_cnn28_no_clr.toml``, 938 updates per epoch), the candidate
``configs/experiments/fashion_cnn28_one_cycle_auto.toml`` at 3, 5 and 10 epochs, the target 85 %; the
rest as below.

The claim under test (Smith & Topin 2017): one-cycle reaches the accuracy of a well-tuned constant LR in a
fraction of the iterations. Reference: the published recipe, Adam at a constant 1e-2, batch 100, 6000 steps
(``configs/experiments/mnist1d_reference.toml``). A constant LR does not depend on the budget, so one
6000-step run per seed gives the reference at every budget: its test accuracy after N steps is what a run
of N steps reaches. Candidate: the same CNN and optimizer with one-cycle and ``max_lr = "auto"`` (the LR
race, on a validation split carved from the training data) at each budget N of 1500, 3000, 4500 and 6000
steps (``configs/experiments/mnist1d_one_cycle_auto.toml`` with ``train.total_steps = N``): one-cycle's
shape depends on N, so every budget is its own run. Both evaluate on the test split after every epoch
(40 steps on MNIST-1D); nothing is selected on it.

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

#: reference config, candidate config, the budgets, the config key they set, steps per budget unit, target
TASKS = {
    "mnist1d": {
        "reference": "configs/experiments/mnist1d_reference.toml",
        "candidate": "configs/experiments/mnist1d_one_cycle_auto.toml",
        "budgets": (1500, 3000, 4500, 6000),
        "key": "train.total_steps",
        "unit_steps": 1,
        "target": 0.92,
        "title": "MNIST-1D",
        "reference_text": "Adam 1e-2 constant, batch 100",
        "candidate_text": "the same CNN and Adam",
    },
    "fashion": {
        "reference": "configs/fashion_cnn28_no_clr.toml",
        "candidate": "configs/experiments/fashion_cnn28_one_cycle_auto.toml",
        "budgets": (3, 5, 10),
        "key": "train.epochs",
        "unit_steps": 938,
        "target": 0.85,
        "title": "Fashion-MNIST (60k, cnn28, SGD)",
        "reference_text": "the cyclical-LR tutorial's SGD 0.01 constant, batch 64",
        "candidate_text": "the same CNN and SGD with momentum cycled 0.95 -> 0.85",
    },
}


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
    parser.add_argument("--task", choices=list(TASKS), default="mnist1d")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--target", type=float, default=None, help="default 0.92 (MNIST-1D), 0.85 (Fashion)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default cadence-runs/super-convergence[-TASK]"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="default results/super_convergence[_TASK].md"
    )
    parser.add_argument("--smoke", action="store_true", help="1 seed, budgets of 40 and 80 steps")
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    suffix = "" if args.task == "mnist1d" else f"_{args.task}"
    args.out = args.out or ROOT / "cadence-runs" / ("super-convergence" + suffix.replace("_", "-"))
    args.output = args.output or RESULTS / f"super_convergence{suffix}.md"
    args.target = args.target if args.target is not None else task["target"]
    budgets, unit = task["budgets"], task["unit_steps"]
    if args.smoke:
        args.seeds, budgets = 1, (40, 80) if args.task == "mnist1d" else (1, 2)
        args.out = args.out.with_name(args.out.name + "-smoke")
    started = datetime.datetime.now(datetime.timezone.utc)
    common = ['train.progress="off"', "train.eval_every_epochs=1"]
    target = f"val_accuracy={args.target}"
    run_compare(
        [task["reference"]],
        seeds=args.seeds,
        jobs=args.jobs,
        out=args.out / "reference",
        target=target,
        overrides=[*common, f"{task['key']}={max(budgets)}"],
    )
    for budget in budgets:
        run_compare(
            [task["candidate"]],
            seeds=args.seeds,
            jobs=args.jobs,
            out=args.out / f"one_cycle_{budget}",
            target=target,
            overrides=[*common, f"{task['key']}={budget}"],
        )
    reference = curves(args.out / "reference")
    record: dict = {"date": f"{started:%Y-%m-%d %H:%M} UTC", "target": args.target, "budgets": {}}
    rows = [
        f"| budget ({'steps' if unit == 1 else 'epochs'}) | × reference "
        "| reference: test acc. at that step (%) | one-cycle auto (%) | one-cycle − reference "
        f"| one-cycle reached {100 * args.target:.0f}% (runs: mean steps) |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for budget in budgets:
        candidate = curves(args.out / f"one_cycle_{budget}")
        seeds = sorted(set(reference) & set(candidate))
        ref = [accuracy_at(reference[seed], budget * unit) for seed in seeds]
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
        f"# Super-convergence on {task['title']}: one-cycle with the auto LR at 1/4x to 1x of the reference "
        "budget",
        "",
        f"- date: {record['date']}; machine: {machine()}; {args.seeds} seeds (0..{args.seeds - 1})",
        "- command: `python benchmarks/super_convergence.py"
        + (f" --task {args.task}" if args.task != "mnist1d" else "")
        + (" --smoke" if args.smoke else "")
        + "`",
        f"- reference: {task['reference_text']}, {max(budgets) * unit} steps; it reached "
        f"{100 * args.target:.0f}% in {describe_steps(reference_steps)} steps (runs that reached it: mean)",
        f'- one-cycle: {task["candidate_text"]}, `max_lr = "auto"`, one run per budget; test split '
        "evaluated after every epoch",
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
