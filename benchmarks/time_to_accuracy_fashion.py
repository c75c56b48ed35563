"""Time to accuracy on Fashion-MNIST (cnn28): the cyclical-LR tutorial's two runs against one-cycle, auto LR.

    python benchmarks/time_to_accuracy_fashion.py                   # 5k/2k subsets, 3 seeds (~6 min CPU)
    python benchmarks/time_to_accuracy_fashion.py --subset 0 --test-size 0   # the full data (hours on CPU)
    python benchmarks/time_to_accuracy_fashion.py --smoke           # seconds: 1 seed, 1000 images, 1 epoch

Configs: TensorFlow's cyclical-LR tutorial — SGD, batch 64, 10 epochs, no CLR
(``configs/fashion_cnn28_no_clr.toml``) and triangular2 CLR 1e-4..1e-2 with a step size of 2 epochs
(``configs/fashion_cnn28_triangular2.toml``) — and the same model with one-cycle and ``max_lr = "auto"``
(``configs/experiments/fashion_cnn28_one_cycle_auto.toml``). Needs the Fashion-MNIST IDX files (Debian
package ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist``).

On a 2-core CPU the full recipe (9 runs × 9380 steps) does not fit a benchmark budget, so by default the
training set is a fixed random subset of 5,000 images (``--set data.subset=5000``; the schedules are given
in epochs and scale with it) and the test set a fixed random subset of 2,000 (``data.test_size=2000``).
Accuracy per epoch and steps to 85% are written to ``benchmarks/results/time_to_accuracy.md``, the
compare tables to ``benchmarks/results/seed_experiments.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cell, machine, publish_time_to_accuracy, run_compare

CONFIGS = [
    "configs/fashion_cnn28_no_clr.toml",
    "configs/fashion_cnn28_triangular2.toml",
    "configs/experiments/fashion_cnn28_one_cycle_auto.toml",
]
LABELS = {
    "fashion_cnn28_no_clr": "SGD 0.01, no CLR (tutorial)",
    "fashion_cnn28_triangular2": "triangular2 CLR 1e-4..1e-2 (tutorial)",
    "fashion_cnn28_one_cycle_auto": "one_cycle, max_lr=auto",
}
TARGET = 0.85


def accuracy_per_epoch(out: Path, names: list[str]) -> tuple[list[str], list[list[str]]]:
    """Mean ± std test accuracy (%) after each epoch, per config (from the runs' metrics.jsonl)."""
    from cadence.tracking.compare import find_run_dirs, load_run

    runs = [load_run(path) for path in find_run_dirs([out / "runs"])]
    table: dict[str, dict[int, list[float]]] = {name: {} for name in names}
    for run in runs:
        if not run.usable or run.name not in table:
            continue
        for record in run.evals:
            epoch = round(float(record["epoch"]))
            table[run.name].setdefault(epoch, []).append(float(record["val_accuracy"]))
    epochs = sorted({epoch for per_epoch in table.values() for epoch in per_epoch})
    header = ["epoch", *[LABELS.get(name, name) for name in names]]
    rows = []
    for epoch in epochs:
        row = [str(epoch)]
        for name in names:
            values = np.array(table[name].get(epoch, []), dtype=float) * 100
            if values.size == 0:
                row.append("—")
            elif values.size == 1:
                row.append(f"{values[0]:.2f}")
            else:
                row.append(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}")
        rows.append(row)
    return header, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=5000, help="training images (0 = all 60000)")
    parser.add_argument("--test-size", type=int, default=2000, help="test images (0 = all 10000)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "cadence-runs" / "tta-fashion")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 1000 images, 1 epoch, nothing written")
    parser.add_argument("--report-only", action="store_true", help="tabulate the runs already in --out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.subset, args.test_size, args.epochs = 1, 1000, 500, 1
        args.out = args.out.with_name(args.out.name + "-smoke")
    overrides = ['train.progress="off"', f"train.epochs={args.epochs}"]
    if args.subset:
        overrides.append(f"data.subset={args.subset}")
    if args.test_size:
        overrides.append(f"data.test_size={args.test_size}")
    test_text = (
        f"a fixed random subset of {args.test_size} of the 10,000 test images"
        if args.test_size
        else "the full 10,000-image test set"
    )
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
    names = [group["name"] for group in results["groups"]]
    summary = [
        "| recipe | runs ok | final test acc. (%) | best (%) | reached 85% | steps to 85% "
        "| seconds to 85% | steps | wall time per run (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group in results["groups"]:
        target = group.get("target", {})
        summary.append(
            f"| {LABELS.get(group['name'], group['name'])} | {group['runs_usable']}/{group['runs_total']} "
            f"| {cell(group['final'].get('val_accuracy'), 100)} "
            f"| {cell(group['best'].get('val_accuracy'), 100)} "
            f"| {target.get('reached', 0)}/{target.get('of', 0)} | {cell(target.get('steps'), digits=0)} "
            f"| {cell(target.get('seconds'), digits=1)} | {cell(group['steps'], digits=0)} "
            f"| {cell(group['wall_time'], digits=1)} |"
        )
    header, rows = accuracy_per_epoch(args.out, names)
    epoch_table = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    epoch_table += ["| " + " | ".join(row) + " |" for row in rows]
    command = "python benchmarks/time_to_accuracy_fashion.py"
    if args.subset != 5000:
        command += f" --subset {args.subset}"
    if args.test_size != 2000:
        command += f" --test-size {args.test_size}"
    if args.seeds != 3:
        command += f" --seeds {args.seeds}"
    if args.epochs != 10:
        command += f" --epochs {args.epochs}"
    shrink = (
        f"training set shrunk to a fixed random subset of {args.subset} of the 60,000 images"
        if args.subset
        else "full 60,000-image training set"
    )
    body = "\n".join(
        [
            "## Fashion-MNIST (cnn28): cyclical-LR tutorial vs one-cycle with an automatic LR",
            "",
            f"{started:%Y-%m-%d %H:%M} UTC · {machine()} · {args.seeds} seeds (0..{args.seeds - 1}) · "
            f"`{command}`",
            "",
            ("Shrunk to fit a shared 2-core CPU: " if args.subset or args.test_size else "Full size: ")
            + f"{shrink}, {args.epochs} epochs, batch 64, "
            f"{test_text} (evaluated after every epoch). The tutorial's recipe is otherwise unchanged "
            "(SGD; step size 2 epochs for triangular2). The full recipe: "
            "`cadence compare configs/fashion_cnn28_no_clr.toml "
            "configs/fashion_cnn28_triangular2.toml configs/experiments/fashion_cnn28_one_cycle_auto.toml "
            "--seeds 3 --target val_accuracy=0.85`"
            + (" (not run here: ~9 × 9380 steps)." if args.subset or args.test_size else "."),
            "",
            *summary,
            "",
            "Test accuracy (%) after each epoch, mean ± std over seeds:",
            "",
            *epoch_table,
            "",
            *[f"- {entry['statement']}" for entry in results.get("significance", [])],
            "",
            "Seconds are wall-clock on a shared machine and vary with its load; steps are exact.",
        ]
    )
    return publish_time_to_accuracy(
        "fashion",
        body,
        "## Fashion-MNIST (cnn28): no CLR vs triangular2 CLR vs one-cycle auto LR\n\n"
        f"`{command}` ({shrink}, {args.epochs} epochs; report in `{args.out.name}/report.html`)\n\n",
        args.out,
        args.smoke,
    )


if __name__ == "__main__":
    sys.exit(main())
