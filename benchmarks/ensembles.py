"""Single cosine run vs snapshot ensembles (M = 3 and 5) vs SWA vs EMA at the same number of optimizer steps.

    python benchmarks/ensembles.py           # MNIST-1D (5 seeds, 100 epochs) + Fashion-MNIST 10k (3, 30)
    python benchmarks/ensembles.py --quick         # a smoke run: 1 seed, 2 epochs

Per seed and dataset, training runs of equal length (SGD, Nesterov momentum 0.9, weight decay 5e-4):

- ``cosine``: one cosine decay from ``max_lr`` to 0. An :class:`EMA` callback rides along on this same run,
  so "EMA" is the exponential average of the cosine run's weights (decay ``1 - 10 / total_steps``, horizon
  about a tenth of the run, with the usual warmup ``min(d, (1+n)/(10+n))``).
- ``snapshot M``: ``snapshot_cosine(max_lr, total_steps, num_snapshots=M)``, M cosine cycles; the M
  snapshots are combined with ``mean_prob``. "last snapshot" is the final model of that run alone, and
  "snapshot alone" the mean accuracy of the M snapshots each on its own.
- ``swa``: the cosine decay until 75% of the run, then the LR annealed (cosine, 5% of the run) to
  ``0.1 · max_lr`` and held; SWA averages every step from 75% on; batch-norm statistics recomputed.

The budgets are chosen so that every snapshot can converge: a cycle of the M = 5 run is as long as the whole
budget of the earlier (20-epoch MNIST-1D, 6-epoch Fashion) runs, where a single model already reached its
plateau. The check is printed: each snapshot alone should be within about a point of the single model.

Test accuracy, NLL and ECE (15 bins) mean ± std over seeds, Welch t-test and bootstrap CI against the single
model (``cadence.tracking.stats``, as in ``cadence compare``); inference cost = forward passes per example
relative to one model, and the measured time to predict the test set. Nothing is selected on the test set
(fixed max_lr, every snapshot used). Results: benchmarks/results/ensembles.md (+ .json).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
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
from cadence.callbacks.averaging import EMA, SWA
from cadence.callbacks.snapshot import SnapshotEnsemble
from cadence.data import TensorLoader, load
from cadence.ensembles import Ensemble
from cadence.schedules import cosine, snapshot_cosine
from cadence.train.trainer import Trainer

#: Budgets long enough for a snapshot to converge within its cycle (see the module docstring).
SETUPS = {
    "mnist1d": {**CNN_SETUPS["mnist1d"], "seeds": 5, "epochs": 100},
    "fashion-mnist": {
        **CNN_SETUPS["fashion-mnist"],
        "load": {**CNN_SETUPS["fashion-mnist"]["load"], "subset": 10000},
        "note": "Fashion-MNIST subset (10000 train / 2000 test images), cnn28, {epochs} epochs of batch 100",
        "seeds": 3,
        "epochs": 30,
    },
}


def _predict_time(model: torch.nn.Module, inputs: torch.Tensor, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds to predict ``inputs`` in batches of 500."""
    model.eval()
    best = math.inf
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for index in range(0, len(inputs), 500):
                model(inputs[index : index + 500])
            best = min(best, time.perf_counter() - start)
    return best


def run_seed(dataset: str, setup: dict, data, seed: int, epochs: int, snapshot_counts: list[int]) -> dict:
    test_inputs, test_targets = data.test.inputs, data.test.targets

    def make_model() -> torch.nn.Module:
        return models.create(setup["model"], num_classes=data.num_classes, input_shape=data.input_shape)

    def fit(schedule, callbacks, run_dir):
        torch.manual_seed(seed)
        model = make_model()
        optimizer = torch.optim.SGD(
            model.parameters(), lr=setup["max_lr"], momentum=0.9, nesterov=True, weight_decay=5e-4
        )
        train = TensorLoader(data.train.inputs, data.train.targets, setup["batch_size"], seed=seed)
        trainer = Trainer(
            model,
            optimizer,
            F.cross_entropy,
            train,
            epochs=epochs,
            schedules={"lr": schedule},
            callbacks=callbacks,
            run_dir=run_dir,
            eval_every_epochs=None,
            checkpoint_every_epochs=None,
            progress=False,
            device="cpu",
            seed=seed,
        )
        started = time.perf_counter()
        state = trainer.fit()
        return model, state, time.perf_counter() - started

    steps_per_epoch = math.ceil(len(data.train) / setup["batch_size"])
    total_steps = epochs * steps_per_epoch
    max_lr = setup["max_lr"]
    result: dict = {"dataset": dataset, "seed": seed, "total_steps": total_steps, "epochs": epochs}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        ema = EMA(decay=1 - 10 / total_steps)
        single, _, seconds = fit(cosine(max_lr, 0.0, total_steps), [ema], root / "cosine")
        result["cosine"] = evaluate_scores(single, test_inputs, test_targets)
        result["ema"] = evaluate_scores(ema.averaged.module, test_inputs, test_targets)
        result["train_seconds_cosine"] = seconds
        result["predict_seconds_single"] = _predict_time(single, test_inputs)

        for count in snapshot_counts:
            schedule = snapshot_cosine(max_lr=max_lr, total_steps=total_steps, num_snapshots=count)
            collector = SnapshotEnsemble(schedule=schedule)
            last, _, seconds = fit(schedule, [collector], root / f"snapshot{count}")
            files = sorted(
                (root / f"snapshot{count}" / "snapshots").glob("snapshot-*.pt"), key=lambda p: int(p.stem[9:])
            )
            ensemble = Ensemble(files, model_factory=make_model, combine="mean_prob")
            result[f"snapshot{count}"] = evaluate_scores(ensemble, test_inputs, test_targets)
            result[f"snapshot{count}_last"] = evaluate_scores(last, test_inputs, test_targets)
            alone = [evaluate_scores(member, test_inputs, test_targets) for member in ensemble.members]
            result[f"snapshot{count}_alone"] = {
                metric: statistics.mean(scores[metric] for scores in alone) for metric in alone[0]
            }
            result[f"snapshot{count}_members_accuracy"] = [scores["accuracy"] for scores in alone]
            result[f"snapshot{count}_steps"] = collector.taken
            result[f"train_seconds_snapshot{count}"] = seconds
            result[f"predict_seconds_snapshot{count}"] = _predict_time(ensemble, test_inputs)

        base = cosine(max_lr, 0.0, total_steps)
        swa = SWA(start=0.75, lr=0.1 * max_lr, anneal_steps=max(1, total_steps // 20), schedule=base)
        _, _, seconds = fit(base, [swa], root / "swa")
        result["swa"] = evaluate_scores(swa.averaged.module, test_inputs, test_targets)
        result["swa_n_averaged"] = swa.num_averaged
        result["train_seconds_swa"] = seconds
    return result


def methods(counts: list[int]) -> list[tuple[str, str, int]]:
    """(result key, label, forward passes) for the single model, EMA, SWA and each snapshot run."""
    rows = [("cosine", "single model, one cosine decay", 1), ("ema", "EMA of the cosine run", 1)]
    rows.append(("swa", "SWA (last 25%)", 1))
    for count in counts:
        rows += [
            (f"snapshot{count}_alone", f"M = {count}: a snapshot alone (mean of the {count})", 1),
            (f"snapshot{count}_last", f"M = {count}: last snapshot", 1),
            (f"snapshot{count}", f"M = {count}: snapshot ensemble", count),
        ]
    return rows


#: (result key, metric name for the test's direction, scale): ECE differences in points; lower is better.
COMPARED_METRICS = (("accuracy", "accuracy", 1), ("nll", "loss", 1), ("ece", "calibration_error", 100))


def write_report(results: list[dict], args: argparse.Namespace, started: str, wall: float) -> str:
    lines = [
        "# Snapshot ensembles, SWA and EMA vs one cosine run (same optimizer steps)",
        "",
        *report_header("ensembles.py", started, wall, args.quick),
        "- GPU throughput: not measured (no GPU).",
        "",
    ]
    for dataset in dict.fromkeys(result["dataset"] for result in results):
        rows = [result for result in results if result["dataset"] == dataset]
        setup = SETUPS[dataset]
        counts = [count for count in args.snapshots if f"snapshot{count}" in rows[0]]
        note = setup["note"].format(epochs=rows[0]["epochs"])
        steps = ", ".join(f"M = {count}: {rows[0][f'snapshot{count}_steps']}" for count in counts)
        lines += [
            f"## {dataset}: {len(rows)} seeds",
            "",
            f"{note} ({rows[0]['total_steps']} steps), SGD Nesterov 0.9, weight decay 5e-4, "
            f"max_lr {setup['max_lr']}. Snapshot steps: {steps}.",
            "",
            "| method | test accuracy % | test NLL | test ECE % | forward passes | predict test set (s) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, label, passes in methods(counts):
            accuracy = format_mean_std([row[key]["accuracy"] for row in rows])
            nll = format_mean_std([row[key]["nll"] for row in rows], scale=1.0, digits=3)
            ece = format_mean_std([row[key]["ece"] for row in rows])
            time_key = f"predict_seconds_{key}" if passes > 1 else "predict_seconds_single"
            seconds = statistics.mean(row[time_key] for row in rows)
            lines.append(f"| {label} | {accuracy} | {nll} | {ece} | {passes}× | {seconds:.3f} |")
        lines.append("")
        single = [row["cosine"]["accuracy"] for row in rows]
        for count in counts:
            members = [accuracy for row in rows for accuracy in row[f"snapshot{count}_members_accuracy"]]
            gap = 100 * (statistics.mean(members) - statistics.mean(single))
            worst = 100 * (min(members) - statistics.mean(single))
            verdict = "converged" if gap > -1.0 else "NOT converged: cycles too short"
            lines.append(
                f"- Convergence check, M = {count}: a snapshot alone is {gap:+.2f} points from the single "
                f"model on average (worst snapshot {worst:+.2f}): {verdict}."
            )
        compared = [(key, label) for key, label, _ in methods(counts) if key in ("ema", "swa")]
        compared += [(f"snapshot{count}", f"M = {count} snapshot ensemble") for count in counts]
        for key, label in compared:
            for metric, name, scale in COMPARED_METRICS:
                values = [scale * row[key][metric] for row in rows]
                baseline = [scale * row["cosine"][metric] for row in rows]
                title = f"{label}, {metric}" + (" (points)" if scale == 100 else "")
                statement = significance(values, baseline, title, "single model", name)
                lines.append(f"- {statement}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs: check that it runs")
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--snapshots", type=int, nargs="+", default=[3, 5], help="M values (cosine cycles)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per dataset (default: 5 and 3)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 100 and 30)")
    parser.add_argument("--output", type=Path, default=RESULTS / "ensembles.md")
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
        seeds = 1 if args.quick else (args.seeds or setup["seeds"])
        epochs = 2 if args.quick else (args.epochs or setup["epochs"])
        for seed in range(seeds):
            result = run_seed(dataset, setup, data, seed, epochs, args.snapshots)
            keep_result(results, result, args.output)
    write_markdown(write_report(results, args, started, time.perf_counter() - begin), args.output)


if __name__ == "__main__":
    main()
