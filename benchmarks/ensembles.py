"""Single cosine run vs snapshot ensemble vs SWA vs EMA at the same number of optimizer steps.

    python benchmarks/ensembles.py                 # MNIST-1D (5 seeds) + Fashion-MNIST cnn28 subset (3 seeds)
    python benchmarks/ensembles.py --quick         # a smoke run: 1 seed, 2 epochs

Per seed and dataset three training runs of equal length (SGD, Nesterov momentum 0.9, weight decay 5e-4):

- ``cosine``: one cosine decay from ``max_lr`` to 0. An :class:`EMA` callback rides along on this same run,
  so "EMA" is the exponential average of the cosine run's weights (decay ``1 - 10 / total_steps``, horizon
  about a tenth of the run, with the usual warmup ``min(d, (1+n)/(10+n))``).
- ``snapshot``: ``snapshot_cosine(max_lr, total_steps, num_snapshots=M)``, M = 5 cosine cycles; the M
  snapshots are combined with ``mean_prob``. "last snapshot" is the final model of that run alone.
- ``swa``: the cosine decay until 75% of the run, then the LR annealed (cosine, 5% of the run) to
  ``0.1 · max_lr`` and held; SWA averages every step from 75% on; batch-norm statistics recomputed.

Test accuracy (and NLL) mean ± std over seeds; inference cost = forward passes per example relative to one
model, and the measured time to predict the test set. Results: benchmarks/results/ensembles.md (+ .json).
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

SETUPS = {
    name: {**CNN_SETUPS[name], "seeds": seeds} for name, seeds in (("mnist1d", 5), ("fashion-mnist", 3))
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


def run_seed(dataset: str, setup: dict, data, seed: int, epochs: int, snapshots: int) -> dict:
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
            eval_data=TensorLoader(test_inputs, test_targets, 500, shuffle=False),
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

        schedule = snapshot_cosine(max_lr=max_lr, total_steps=total_steps, num_snapshots=snapshots)
        collector = SnapshotEnsemble(schedule=schedule)
        last, _, seconds = fit(schedule, [collector], root / "snapshot")
        files = sorted((root / "snapshot" / "snapshots").glob("snapshot-*.pt"), key=lambda p: int(p.stem[9:]))
        ensemble = Ensemble(files, model_factory=make_model, combine="mean_prob")
        result["snapshot"] = evaluate_scores(ensemble, test_inputs, test_targets)
        result["last_snapshot"] = evaluate_scores(last, test_inputs, test_targets)
        result["snapshot_steps"] = collector.taken
        result["train_seconds_snapshot"] = seconds
        result["predict_seconds_single"] = _predict_time(single, test_inputs)
        result["predict_seconds_snapshot"] = _predict_time(ensemble, test_inputs)

        base = cosine(max_lr, 0.0, total_steps)
        swa = SWA(start=0.75, lr=0.1 * max_lr, anneal_steps=max(1, total_steps // 20), schedule=base)
        _, _, seconds = fit(base, [swa], root / "swa")
        result["swa"] = evaluate_scores(swa.averaged.module, test_inputs, test_targets)
        result["swa_n_averaged"] = swa.num_averaged
        result["train_seconds_swa"] = seconds
    return result


METHODS = [
    ("cosine", "single model, one cosine decay", 1),
    ("ema", "EMA of the cosine run", 1),
    ("swa", "SWA (last 25%)", 1),
    ("last_snapshot", "snapshot run, last snapshot alone", 1),
    ("snapshot", "snapshot ensemble (M members)", None),
]


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
        members = len(rows[0]["snapshot_steps"])
        note = setup["note"].format(epochs=rows[0]["epochs"])
        lines += [
            f"## {dataset}: {len(rows)} seeds",
            "",
            f"{note} ({rows[0]['total_steps']} steps; shrunk to fit a shared CPU), SGD Nesterov 0.9, "
            f"weight decay 5e-4, max_lr {setup['max_lr']}. Snapshot steps: {rows[0]['snapshot_steps']}.",
            "",
            "| method | test accuracy % (mean ± std) | test NLL | forward passes | predict test set (s) |",
            "|---|---:|---:|---:|---:|",
        ]
        single_time = statistics.mean(row["predict_seconds_single"] for row in rows)
        ensemble_time = statistics.mean(row["predict_seconds_snapshot"] for row in rows)
        for key, label, passes in METHODS:
            accuracy = format_mean_std([row[key]["accuracy"] for row in rows])
            nll = statistics.mean(row[key]["nll"] for row in rows)
            passes = passes or members
            seconds = ensemble_time if key == "snapshot" else single_time
            label = label.replace("M members", f"M = {members}")
            lines.append(f"| {label} | {accuracy} | {nll:.3f} | {passes}× | {seconds:.3f} |")
        per_seed = ", ".join(
            f"{100 * (row['snapshot']['accuracy'] - row['cosine']['accuracy']):+.1f}" for row in rows
        )
        lines += ["", f"Snapshot ensemble minus single cosine model, per seed (points): {per_seed}.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs: check that it runs")
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--snapshots", type=int, default=5, help="M, the number of cosine cycles")
    parser.add_argument("--output", type=Path, default=RESULTS / "ensembles.md")
    args = parser.parse_args()
    started, begin = start()
    results = []
    for dataset in args.datasets:
        setup = SETUPS[dataset]
        data = load(**setup["load"])
        seeds = 1 if args.quick else setup["seeds"]
        epochs = 2 if args.quick else setup["epochs"]
        for seed in range(seeds):
            result = run_seed(dataset, setup, data, seed, epochs, args.snapshots)
            keep_result(results, result, args.output)
    write_markdown(write_report(results, args, started, time.perf_counter() - begin), args.output)


if __name__ == "__main__":
    main()
