"""Time per optimizer step: cadence's Trainer against the equivalent hand-written loop, side by side.

Both train the MNIST-1D reference CNN (``cadence.models.create("cnn1d")``) on the same data order
(``cadence.data.TensorLoader`` with the same seed), with the same one-cycle LR and momentum schedules written
by ``set_hyperparams`` before every update, the same seeding and one ``loss.item()`` per step (the hand loop
keeps its losses, as a loop that reports them must). Runs are interleaved (hand, Trainer, Trainer with
callbacks, in rotating order) so that load from other processes hits all variants alike, and the ratio of the
wall times of each pair is reported as mean ± std over seeds and repeats.

Variants:
  bare:      Trainer(..., progress=False), no run directory.
  callbacks: progress bar (tqdm, into a buffer), metrics.jsonl + meta/summary in a run directory, and a
             checkpoint at the end of every epoch.

The final parameters of the bare Trainer must equal the hand loop's bit for bit, and the losses logged in
metrics.jsonl must equal the hand loop's losses.

Usage: python benchmarks/trainer_overhead.py [--seeds 3] [--repeats 2] [--epochs 5] [--train-size 4000]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cadence import models
from cadence.callbacks.progress import ProgressBar
from cadence.data import TensorLoader
from cadence.hyperparams import set_hyperparams
from cadence.schedules import one_cycle, one_cycle_momentum
from cadence.train.trainer import Trainer


def mnist1d_tensors(train_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    arguments = get_dataset_args()
    arguments.num_samples = max(arguments.num_samples, int(train_size / arguments.train_split) + 1)
    data = make_dataset(arguments)
    inputs = torch.tensor(data["x"][:train_size], dtype=torch.float32).unsqueeze(1)
    targets = torch.tensor(data["y"][:train_size], dtype=torch.long)
    return inputs, targets


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def schedules(total_steps: int) -> dict:
    return {
        "lr": one_cycle(max_lr=0.05, total_steps=total_steps),
        "momentum": one_cycle_momentum(total_steps=total_steps),
    }


def setup(seed: int, inputs, targets, batch_size: int):
    torch.manual_seed(1000 + seed)
    model = models.create("cnn1d", input_shape=(40,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = TensorLoader(inputs, targets, batch_size, seed=seed)
    return model, optimizer, loader


def hand_loop(seed, inputs, targets, batch_size, epochs):
    model, optimizer, loader = setup(seed, inputs, targets, batch_size)
    total_steps = epochs * len(loader)
    plan = schedules(total_steps)
    started = time.perf_counter()
    seed_everything(seed)
    losses, step = [], 0
    model.train()
    for epoch in range(epochs):
        for x, y in loader.batches(epoch):
            set_hyperparams(optimizer, step, **plan)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
    return time.perf_counter() - started, model, losses, total_steps


def trainer_run(seed, inputs, targets, batch_size, epochs, with_callbacks: bool, run_dir: Path | None):
    model, optimizer, loader = setup(seed, inputs, targets, batch_size)
    total_steps = epochs * len(loader)
    options = {}
    if with_callbacks:
        options = {
            "callbacks": [ProgressBar(mode="bar", stream=io.StringIO())],
            "run_dir": run_dir,
            "checkpoint_every_epochs": 1,
        }
    started = time.perf_counter()
    trainer = Trainer(
        model,
        optimizer,
        F.cross_entropy,
        loader,
        epochs=epochs,
        schedules=schedules(total_steps),
        device="cpu",
        seed=seed,
        progress=False,
        **options,
    )
    trainer.fit()
    return time.perf_counter() - started, model, total_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    inputs, targets = mnist1d_tensors(args.train_size)
    ratios = {"bare": [], "callbacks": []}
    per_step = {"hand": [], "bare": [], "callbacks": []}
    identical_parameters, identical_losses = True, True
    with tempfile.TemporaryDirectory() as directory:
        hand_loop(0, inputs, targets, args.batch_size, 1)  # warm-up: allocator, kernels, imports
        trainer_run(0, inputs, targets, args.batch_size, 1, True, Path(directory) / "warmup")
        for seed in range(args.seeds):
            for repeat in range(args.repeats):
                order = ["hand", "bare", "callbacks"]
                shift = (seed * args.repeats + repeat) % 3
                order = order[shift:] + order[:shift]
                times, results = {}, {}
                for variant in order:
                    run_dir = Path(directory) / f"s{seed}-r{repeat}"
                    if variant == "hand":
                        elapsed, model, losses, steps = hand_loop(
                            seed, inputs, targets, args.batch_size, args.epochs
                        )
                        results["hand"] = (model, losses)
                    else:
                        with_callbacks = variant == "callbacks"
                        elapsed, model, steps = trainer_run(
                            seed, inputs, targets, args.batch_size, args.epochs, with_callbacks, run_dir
                        )
                        results[variant] = (model, None)
                    times[variant] = elapsed
                    per_step[variant].append(elapsed / steps * 1e3)
                for variant in ("bare", "callbacks"):
                    ratios[variant].append(times[variant] / times["hand"])
                hand_state = results["hand"][0].state_dict()
                for variant in ("bare", "callbacks"):
                    state = results[variant][0].state_dict()
                    identical_parameters &= all(torch.equal(hand_state[k], state[k]) for k in hand_state)
                logged = [
                    json.loads(line)["loss"]
                    for line in (Path(directory) / f"s{seed}-r{repeat}" / "metrics.jsonl")
                    .read_text()
                    .splitlines()
                    if json.loads(line)["kind"] == "train"
                ]
                identical_losses &= logged == results["hand"][1]
                print(
                    f"seed {seed} repeat {repeat}: hand {times['hand']:.3f}s  "
                    f"bare x{ratios['bare'][-1]:.3f}  callbacks x{ratios['callbacks'][-1]:.3f}",
                    file=sys.stderr,
                )

    def mean_std(values):
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    steps = args.epochs * -(-args.train_size // args.batch_size)
    print(
        f"MNIST-1D cnn1d, {args.train_size} examples, batch {args.batch_size}, {args.epochs} epochs "
        f"({steps} steps), torch {torch.__version__}, {args.threads} thread(s), "
        f"{args.seeds} seeds x {args.repeats} repeats"
    )
    for variant in ("hand", "bare", "callbacks"):
        mean, std = mean_std(per_step[variant])
        print(f"  time/step {variant:9s}: {mean:.3f} ± {std:.3f} ms")
    for variant in ("bare", "callbacks"):
        mean, std = mean_std(ratios[variant])
        median = statistics.median(ratios[variant])
        print(f"  ratio Trainer({variant}) / hand loop: {mean:.4f} ± {std:.4f} (median {median:.4f})")
    print(f"  final parameters identical to the hand loop: {identical_parameters}")
    print(f"  logged losses identical to the hand loop's: {identical_losses}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "ratios": ratios,
                    "per_step_ms": per_step,
                    "identical_parameters": identical_parameters,
                    "identical_losses": identical_losses,
                },
                indent=2,
            )
        )
    return 0 if identical_parameters and identical_losses else 1


if __name__ == "__main__":
    sys.exit(main())
