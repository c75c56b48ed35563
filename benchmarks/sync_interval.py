"""Trainer time per step against the interval between loss reads (``log_every_n_steps``), side by side.

The Trainer keeps each step's loss on the device and reads the losses of ``log_every_n_steps`` steps in one
transfer. This script trains the same model on the same data order with intervals 1, 2, 5, 10, 20 and 50,
interleaved in a rotating order (so load from other processes hits all of them alike), and reports for each
interval the median time between consecutive updates (a time stamp in ``on_step_end``), and its ratio to
interval 1 within the same round, as mean ± std over seeds × repeats. The final parameters must be equal
bit for bit across intervals (the reads change when values are read, never what is computed).

On a CPU the "device" is the host: a read costs a function call, not a pipeline drain, so this measures
what the deferred reads cost (the per-step bookkeeping), not what they save on an accelerator, where each
read waits for all the work queued before it.

Usage: python benchmarks/sync_interval.py [--seeds 3] [--repeats 2] [--steps 300] [--model mlp|cnn1d]
       [--output benchmarks/results/sync_interval.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mean_std

from cadence import models
from cadence.data import TensorLoader
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

INTERVALS = (1, 2, 5, 10, 20, 50)


class Stamps(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_end(self, state) -> None:
        self.times.append(time.perf_counter())


def make_model(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if name == "cnn1d":
        return models.create("cnn1d")
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(40, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)
    )


def run(model_name: str, seed: int, interval: int, steps: int) -> tuple[float, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(4000, 1, 40, generator=generator)  # the MNIST-1D shapes: 40 samples, 10 classes
    projection = torch.randn(40, 10, generator=generator)
    targets = (inputs.flatten(1) @ projection).argmax(dim=1)  # learnable labels: the run trains
    model = make_model(model_name, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    stamps = Stamps()
    Trainer(
        model,
        optimizer,
        F.cross_entropy,
        TensorLoader(inputs, targets, batch_size=64, shuffle=True, seed=seed),
        total_steps=steps,
        callbacks=[stamps],
        progress=False,
        log_every_n_steps=interval,
        seed=seed,
    ).fit()
    gaps = [later - earlier for earlier, later in zip(stamps.times, stamps.times[1:])]
    return statistics.median(gaps), [parameter.detach().clone() for parameter in model.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--model", choices=("mlp", "cnn1d"), default="mlp")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times: dict[int, list[float]] = {interval: [] for interval in INTERVALS}
    ratios: dict[int, list[float]] = {interval: [] for interval in INTERVALS}
    for seed in range(args.seeds):
        for repeat in range(args.repeats):
            shift = (seed * args.repeats + repeat) % len(INTERVALS)
            order = INTERVALS[shift:] + INTERVALS[:shift]
            round_times: dict[int, float] = {}
            reference: list[torch.Tensor] | None = None
            for interval in order:
                median, parameters = run(args.model, seed, interval, args.steps)
                round_times[interval] = median
                if reference is None:
                    reference = parameters
                elif not all(torch.equal(a, b) for a, b in zip(reference, parameters, strict=True)):
                    raise SystemExit(f"parameters differ with log_every_n_steps={interval} (seed {seed})")
            for interval in INTERVALS:
                times[interval].append(round_times[interval])
                ratios[interval].append(round_times[interval] / round_times[1])
    lines = [
        f"model {args.model}, {args.steps} steps, batch 64, {args.seeds} seeds x {args.repeats} repeats, "
        f"torch {torch.__version__}, 1 thread",
        "",
        "| log_every_n_steps | median step (ms), mean ± std | ratio to 1, mean ± std |",
        "|---:|---:|---:|",
    ]
    summary = {}
    for interval in INTERVALS:
        step_mean, step_std = mean_std(times[interval])
        ratio_mean, ratio_std = mean_std(ratios[interval])
        summary[interval] = {"step_ms": [1e3 * t for t in times[interval]], "ratio": ratios[interval]}
        step_cell = f"{1e3 * step_mean:.3f} ± {1e3 * step_std:.3f}"
        lines.append(f"| {interval} | {step_cell} | {ratio_mean:.3f} ± {ratio_std:.3f} |")
    print("\n".join(lines))
    if args.output is not None:
        args.output.write_text(
            json.dumps({"args": vars(args) | {"output": str(args.output)}, **summary}, indent=1)
        )


if __name__ == "__main__":
    main()
