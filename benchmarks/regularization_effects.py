"""Label smoothing 0.1 and mixup 0.2 vs none at the same budget, several seeds.

    python benchmarks/regularization_effects.py          # MNIST-1D 80 epochs, Fashion 10k 30 epochs, 3 seeds
    python benchmarks/regularization_effects.py --quick  # a smoke run: 1 seed, 2 epochs

The budgets are 4× (MNIST-1D: 3200 steps) and 12× (Fashion-MNIST: 3000 steps) those of the first version of
this experiment (800 and 240 steps), where the regularizers had no room to act: a regularizer trades fit on
the training set for generalisation, which only shows once the unregularized model starts to overfit.

Every run: the same model, data order, SGD (Nesterov momentum 0.9, weight decay 5e-4) and one cosine LR decay
from ``max_lr`` to 0 over the run, through :class:`cadence.train.trainer.Trainer`. The variants differ only in
the targets: ``none`` (integer labels), ``label smoothing 0.1`` (``Trainer(label_smoothing=0.1)``) and
``mixup 0.2`` (the :class:`cadence.callbacks.mixup.Mixup` callback, ``alpha=0.2``, whole run). Reported: test
accuracy and test NLL (cross-entropy against the true labels) mean ± std over seeds, and the per-seed
differences to ``none``; plus the expected calibration error (ECE, 15 bins) and Welch's t-test with a
bootstrap CI against ``none`` (as in ``cadence compare``).
Results: benchmarks/results/regularization_effects.md (+ .json).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    CNN_SETUPS,
    RESULTS,
    evaluate_scores,
    format_mean_std,
    keep_result,
    report_header,
    rerender,
    significance,
    start,
    write_markdown,
)

from cadence import models
from cadence.callbacks.mixup import Mixup
from cadence.data import TensorLoader, load
from cadence.schedules import cosine
from cadence.train.trainer import Trainer

SETUPS = {
    "mnist1d": {**CNN_SETUPS["mnist1d"], "epochs": 80},
    "fashion-mnist": {
        **CNN_SETUPS["fashion-mnist"],
        "load": {**CNN_SETUPS["fashion-mnist"]["load"], "subset": 10000},
        "note": "Fashion-MNIST subset (10000 train / 2000 test images), cnn28, {epochs} epochs of batch 100",
        "epochs": 30,
    },
}

VARIANTS = {
    "none": {"label_smoothing": 0.0, "mixup": None},
    "label smoothing 0.1": {"label_smoothing": 0.1, "mixup": None},
    "mixup 0.2": {"label_smoothing": 0.0, "mixup": 0.2},
}


def run(setup: dict, data, seed: int, epochs: int, variant: dict) -> dict:
    torch.manual_seed(seed)
    model = models.create(setup["model"], num_classes=data.num_classes, input_shape=data.input_shape)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=setup["max_lr"], momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    train = TensorLoader(data.train.inputs, data.train.targets, setup["batch_size"], seed=seed)
    total_steps = epochs * math.ceil(len(data.train) / setup["batch_size"])
    callbacks = [Mixup(alpha=variant["mixup"])] if variant["mixup"] else []
    trainer = Trainer(
        model,
        optimizer,
        F.cross_entropy,
        train,
        total_steps=total_steps,
        schedules={"lr": cosine(setup["max_lr"], 0.0, total_steps)},
        callbacks=callbacks,
        label_smoothing=variant["label_smoothing"],
        num_classes=data.num_classes,
        eval_every_epochs=None,
        checkpoint_every_epochs=None,
        progress=False,
        device="cpu",
        seed=seed,
    )
    started = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - started
    return {
        **evaluate_scores(model, data.test.inputs, data.test.targets),
        "train_seconds": seconds,
        "total_steps": total_steps,
    }


#: (result key, metric name for the test's direction, scale): ECE differences in points; lower is better.
COMPARED_METRICS = (("accuracy", "accuracy", 1), ("nll", "loss", 1), ("ece", "calibration_error", 100))


def write_report(results: list[dict], args: argparse.Namespace, started: str, wall: float) -> str:
    lines = [
        "# Label smoothing and mixup vs none (same budget)",
        "",
        *report_header("regularization_effects.py", started, wall, args.quick),
        "- optimizer: SGD, Nesterov momentum 0.9, weight decay 5e-4, one cosine decay from max_lr to 0",
        "",
    ]
    for dataset in dict.fromkeys(result["dataset"] for result in results):
        rows = [result for result in results if result["dataset"] == dataset]
        seeds = sorted({row["seed"] for row in rows})
        setup = SETUPS[dataset]
        note = setup["note"].format(epochs=rows[0]["epochs"])
        lines += [
            f"## {dataset}: {len(seeds)} seeds",
            "",
            f"{note} ({rows[0]['total_steps']} steps), max_lr {setup['max_lr']}.",
            "",
            "| targets | test accuracy % (mean ± std) | test NLL | test ECE % | Δ accuracy vs none, per seed "
            "(points) |",
            "|---|---:|---:|---:|---|",
        ]
        baseline = {row["seed"]: row for row in rows if row["variant"] == "none"}
        for name in VARIANTS:
            chosen = sorted((row for row in rows if row["variant"] == name), key=lambda row: row["seed"])
            if not chosen:
                continue
            accuracy = format_mean_std([row["accuracy"] for row in chosen])
            nll = format_mean_std([row["nll"] for row in chosen], scale=1.0, digits=3)
            ece = format_mean_std([row["ece"] for row in chosen])
            deltas = (
                "–"
                if name == "none"
                else ", ".join(
                    f"{100 * (row['accuracy'] - baseline[row['seed']]['accuracy']):+.1f}"
                    for row in chosen
                    if row["seed"] in baseline
                )
            )
            lines.append(f"| {name} | {accuracy} | {nll} | {ece} | {deltas} |")
        lines.append("")
        none = sorted((row for row in rows if row["variant"] == "none"), key=lambda row: row["seed"])
        for name in list(VARIANTS)[1:]:
            chosen = sorted((row for row in rows if row["variant"] == name), key=lambda row: row["seed"])
            if not chosen or not none:
                continue
            for metric, kind, scale in COMPARED_METRICS:
                title = f"{name}, {metric}" + (" (points)" if scale == 100 else "")
                statement = significance(
                    [scale * row[metric] for row in chosen],
                    [scale * row[metric] for row in none],
                    title,
                    "none",
                    kind,
                )
                lines.append(f"- {statement}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs: check that it runs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 80 and 30)")
    parser.add_argument("--output", type=Path, default=RESULTS / "regularization_effects.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the .json")
    args = parser.parse_args()
    if args.report_only:
        rerender(args.output, lambda results: write_report(results, args, "", 0.0))
        return
    started, begin = start()
    results = []
    for dataset in args.datasets:
        setup = SETUPS[dataset]
        data = load(**setup["load"])
        epochs = 2 if args.quick else (args.epochs or setup["epochs"])
        for seed in range(1 if args.quick else args.seeds):
            for name, variant in VARIANTS.items():
                result = {"dataset": dataset, "seed": seed, "variant": name, "epochs": epochs}
                result.update(run(setup, data, seed, epochs, variant))
                keep_result(results, result, args.output)
    write_markdown(write_report(results, args, started, time.perf_counter() - begin), args.output)


if __name__ == "__main__":
    main()
