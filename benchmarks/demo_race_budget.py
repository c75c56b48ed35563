"""The demo's question at several LR-race budgets: does one-cycle with the raced LR in a quarter of the
steps match the constant-LR reference, when every seed races for itself?

    python benchmarks/demo_race_budget.py                      # budgets 1, 2, 3; 5 seeds; 6000/1500 steps
    python benchmarks/demo_race_budget.py --budgets 1,2,3 --seeds 8 --steps 2000 \
        --output benchmarks/results/demo_race_budget_2000.md   # the demo's earlier 2000/500 steps
    python benchmarks/demo_race_budget.py --smoke              # seconds: 2 seeds, 120-step reference

``cadence demo`` races once (seed 0) and trains every seed at that LR; that measures one race's luck. Here
each seed runs its own race (what ``max_lr = "auto"`` does in each run) and then trains one-cycle at the
value it chose, so the spread over seeds includes the race's. Setup = the demo's (``cadence.cli.demo_cmd``):
MNIST-1D (4000 train / 1000 test), the reference CNN, Adam, batch 100; reference = Adam at a constant 1e-2
for ``--steps`` (6000, the demo's default); one-cycle (β₁ cycled) for a quarter of them (1500). The race
judges on 10% of the training data; the accuracies are on the test split, which nothing here chooses on.
Also trained: one-cycle at each value of a small max_lr grid (every seed), so the gap of each budget to the
best fixed value is visible. Results: ``benchmarks/results/demo_race_budget.md`` (+ ``.json``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, format_mean_std, machine, mean_std, rerender, start, write_markdown

GRID = (0.016, 0.023, 0.032, 0.045, 0.064, 0.09)


def _job(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from cadence.cli import demo_cmd

    seed, steps = spec["seed"], spec["steps"]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        chosen, cost = spec.get("lr"), 0.0
        if spec["kind"] == "race":
            selection = demo_cmd.choose_demo_lr(
                Path(scratch),
                demo_cmd.policy_steps("one_cycle", steps),
                seed,
                budget=spec["budget"],
                plot=False,
            )
            chosen, cost = float(selection.value), float(selection.cost_fraction)
        policy = "reference" if spec["kind"] == "reference" else "one_cycle"
        result = demo_cmd.train_policy(
            {
                "policy": policy,
                "seed": seed,
                "steps": steps,
                "found_lr": chosen or 0.0,
                "run_dir": str(Path(scratch) / "run"),
            }
        )
        accuracy = result.get("metrics", {}).get("val_accuracy")
        return {
            **spec,
            "lr": chosen,
            "cost": cost,
            "status": result["status"],
            "accuracy": float(accuracy) if accuracy is not None and math.isfinite(accuracy) else 0.1,
            "seconds": time.perf_counter() - started,
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", default="1,2,3", help="race budgets, comma-separated (default 1,2,3)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--steps", type=int, default=6000, help="the reference's steps (one-cycle: a quarter)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-grid", action="store_true", help="skip the fixed max_lr grid")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--report", action="store_true", help="rewrite the report from its .json (no training)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "demo_race_budget.md")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.steps, args.budgets, args.no_grid = 2, 120, "1", True
        args.output = Path(tempfile.mkdtemp()) / "demo_race_budget.md"
    budgets = [float(value) for value in args.budgets.split(",")]
    if args.report:  # the original run's date line is kept
        results = json.loads(args.output.with_suffix(".json").read_text())
        args.seeds = 1 + max(r["seed"] for r in results)
        raced = sorted({r["budget"] for r in results if "budget" in r})
        rerender(args.output, lambda results: render(results, args, raced, "?", 0.0))
        return 0
    when, clock = start()
    seeds = range(args.seeds)
    specs: list[dict[str, Any]] = [{"kind": "reference", "seed": s, "steps": args.steps} for s in seeds]
    specs += [{"kind": "race", "budget": b, "seed": s, "steps": args.steps} for b in budgets for s in seeds]
    if not args.no_grid:
        specs += [{"kind": "grid", "lr": lr, "seed": s, "steps": args.steps} for lr in GRID for s in seeds]
    results: list[dict[str, Any]] = []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        for result in pool.map(_job, specs):
            results.append(result)
            label = result["kind"] + (f" budget {result['budget']:g}" if "budget" in result else "")
            print(
                f"{label} seed {result['seed']}: lr {result['lr'] or 0:.4g} -> "
                f"{100 * result['accuracy']:.1f}% ({result['status']}, {result['seconds']:.1f} s)",
                flush=True,
            )
    wall = time.perf_counter() - clock
    report = render(results, args, budgets, when, wall)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(report, args.output)
    return 0


def command(args: Any) -> str:
    """The command line that reproduces this report."""
    if args.smoke:
        return "python benchmarks/demo_race_budget.py --smoke"
    words = ["python benchmarks/demo_race_budget.py", f"--budgets {args.budgets}", f"--seeds {args.seeds}"]
    if args.steps != 6000:
        words.append(f"--steps {args.steps}")
    if args.output != RESULTS / "demo_race_budget.md":
        words.append(f"--output {args.output.relative_to(RESULTS.parents[1])}")
    if args.no_grid:
        words.append("--no-grid")
    return " ".join(words)


def render(results: list[dict[str, Any]], args: Any, budgets: list[float], when: str, wall: float) -> str:
    def rows(kind: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in results if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]

    reference = [r["accuracy"] for r in rows("reference")]
    fast = max(8, args.steps // 4)
    lines = [
        "# The demo's comparison when every seed races for itself, at several race budgets",
        "",
        f"- date: {when} (UTC); {machine()}; wall time {wall / 60:.1f} min",
        f"- command: `{command(args)}`",
        f"- MNIST-1D (4000 train / 1000 test), reference CNN, Adam, batch 100; reference: constant 1e-2 for "
        f"{args.steps} steps; one-cycle: {fast} steps; seeds 0..{args.seeds - 1}; accuracy on the test split "
        "at the end of the run; a run that failed or ended non-finite counts at chance (10%)",
        f"- race cost: its steps (sweep + every candidate) as a fraction of one {fast}-step one-cycle run",
        "",
        "| recipe | max_lr per seed | test accuracy (%) | vs reference (points) | p (Welch) "
        "| race cost (runs) |",
        "|---|---|---:|---:|---:|---:|",
        f"| reference, constant 1e-2, {args.steps} steps | — | {format_mean_std(reference)} | — | — | — |",
    ]

    def line(label: str, chosen: list[dict[str, Any]], cost: str) -> str:
        accuracies = [r["accuracy"] for r in chosen]
        lrs = ", ".join(f"{r['lr']:.3g}" for r in chosen) if chosen[0]["kind"] == "race" else "(fixed)"
        from cadence.tracking.stats import welch_t_test

        delta = 100 * (mean_std(accuracies)[0] - mean_std(reference)[0])
        testable = len(accuracies) > 1 and len(reference) > 1
        p = f"{welch_t_test(accuracies, reference).p_value:.2f}" if testable else "—"
        return f"| {label} | {lrs} | {format_mean_std(accuracies)} | {delta:+.2f} | {p} | {cost} |"

    for budget in budgets:
        chosen = rows("race", budget=budget)
        cost = mean_std([r["cost"] for r in chosen])[0]
        lines.append(line(f"one-cycle, raced LR, budget {budget:g}", chosen, f"{cost:.2f}"))
    for lr in GRID:
        chosen = rows("grid", lr=lr)
        if chosen:
            lines.append(line(f"one-cycle, fixed max_lr {lr:g}", chosen, "— (grid)"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
