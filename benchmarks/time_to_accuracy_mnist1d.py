"""Time to accuracy on MNIST-1D: the reference recipe against one-cycle with an automatic LR.

    python benchmarks/time_to_accuracy_mnist1d.py                # 5 seeds, 2 runs at a time (~5 min CPU)
    python benchmarks/time_to_accuracy_mnist1d.py --smoke        # seconds: 1 seed, 40 steps, nothing written

Reference: Greydanus & Kobak's CNN with Adam at 1e-2, batch 100, 6000 steps (published ~94% test accuracy),
``configs/experiments/mnist1d_reference.toml``. Candidate: the same CNN and optimizer with one-cycle,
``max_lr = "auto"`` (LR range test before training) and 1500 steps — a quarter of the reference's —
``configs/experiments/mnist1d_one_cycle_auto.toml``. Goal (issue 10): at least 94% mean test accuracy in at
most 1500 steps, with no hand-tuned LR.

Both run through ``cadence compare`` (each run its own process with one torch thread); rerunning skips
finished runs. The tables go to ``benchmarks/results/time_to_accuracy.md`` and
``benchmarks/results/seed_experiments.md`` (between this benchmark's markers), the full report to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cell, machine, publish_time_to_accuracy, run_compare

CONFIGS = [
    "configs/experiments/mnist1d_reference.toml",
    "configs/experiments/mnist1d_one_cycle_auto.toml",
]
TARGET = 0.94
REFERENCE_STEPS = 6000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "cadence-runs" / "tta-mnist1d")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 40 steps, results not written")
    parser.add_argument("--report-only", action="store_true", help="tabulate the runs already in --out")
    args = parser.parse_args(argv)
    overrides = ['train.progress="off"']
    if args.smoke:
        args.seeds, args.out = 1, args.out.with_name(args.out.name + "-smoke")
        overrides.append("train.total_steps=40")
    started = datetime.datetime.now(datetime.timezone.utc)
    results = run_compare(
        CONFIGS,
        seeds=args.seeds,
        jobs=args.jobs,
        out=args.out,
        target=f"val_accuracy={TARGET}",
        overrides=overrides,
        report_only=args.report_only,
    )
    reference, candidate = results["groups"]
    rows = [
        "| recipe | steps | runs ok | final test acc. (%) | best (%) | reached 94% | steps to 94% "
        "| seconds to 94% | wall time per run (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group, label in ((reference, "reference: Adam 1e-2 constant"), (candidate, "one_cycle, max_lr=auto")):
        target = group.get("target", {})
        rows.append(
            f"| {label} | {cell(group['steps'], digits=0)} | {group['runs_usable']}/{group['runs_total']} "
            f"| {cell(group['final'].get('val_accuracy'), 100)} "
            f"| {cell(group['best'].get('val_accuracy'), 100)} "
            f"| {target.get('reached', 0)}/{target.get('of', 0)} | {cell(target.get('steps'), digits=0)} "
            f"| {cell(target.get('seconds'), digits=1)} | {cell(group['wall_time'], digits=1)} |"
        )
    final = (candidate["final"].get("val_accuracy") or {}).get("mean")
    steps = (candidate["steps"] or {}).get("mean")
    goal_met = final is not None and final >= TARGET and steps is not None and steps <= REFERENCE_STEPS / 4
    lr_values = []
    for run in candidate["runs"]:
        finder = Path(run["path"]) / "lr_finder.json"
        if finder.exists():
            lr_values.append(json.loads(finder.read_text()).get("value"))
    significance = [entry["statement"] for entry in results.get("significance", [])]
    command = "python benchmarks/time_to_accuracy_mnist1d.py" + (
        f" --seeds {args.seeds}" if args.seeds != 5 else ""
    )
    body = "\n".join(
        [
            "## MNIST-1D: reference recipe vs one-cycle with an automatic LR",
            "",
            f"{started:%Y-%m-%d %H:%M} UTC · {machine()} · {args.seeds} seeds (0..{args.seeds - 1}) · "
            f"`{command}`",
            "",
            "Test accuracy on the 1000 MNIST-1D test examples, evaluated every 40 steps (one epoch); "
            'mean ± std over seeds. "Steps/seconds to 94%" average over the runs that reached it.',
            "",
            *rows,
            "",
            "LR chosen by the range test (per seed): "
            + ", ".join(f"{value:.3g}" for value in lr_values if value)
            + ".",
            "",
            *[f"- {line}" for line in significance],
            "",
            f"**Goal (≥ 94% mean in ≤ {REFERENCE_STEPS // 4} steps, no hand-tuned LR): "
            f"{'met' if goal_met else 'not met'}** (one-cycle mean final accuracy "
            f"{'—' if final is None else f'{100 * final:.2f}%'}).",
            "Seconds are wall-clock on a shared machine and vary with its load; steps are exact.",
        ]
    )
    return publish_time_to_accuracy(
        "mnist1d",
        body,
        "## MNIST-1D: reference recipe (6000 steps) vs one-cycle auto LR (1500 steps)\n\n"
        f"`{command}` (runs `cadence compare`; report in `{args.out.name}/report.html`)\n\n",
        args.out,
        args.smoke,
    )


if __name__ == "__main__":
    sys.exit(main())
