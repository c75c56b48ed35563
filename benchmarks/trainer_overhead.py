"""Time per optimizer step: cadence's Trainer against the equivalent hand-written loop, side by side.

Both train the MNIST-1D reference CNN (``cadence.models.create("cnn1d")``) on the same data order
(``cadence.data.TensorLoader`` with the same seed), with the same one-cycle LR and momentum schedules written
by ``set_hyperparams`` before every update, the same seeding and one ``loss.item()`` per step (the hand loop
keeps its losses, as a loop that reports them must). Runs are interleaved (hand, Trainer, Trainer with
callbacks, in rotating order) so that load from other processes hits all variants alike. Three clocks:

  wall:  total wall time of the run (setup, training, per-epoch work), per step;
  cpu:   total CPU time of this process (one thread), per step: less sensitive to other jobs;
  step:  the median time between consecutive updates (a time stamp after every update: ``stamps.append``
         in the hand loop, a one-line callback in the Trainer), which ignores bursts where another process
         had the core and excludes per-epoch work.

For each clock the ratio Trainer / hand loop of each interleaved pair is reported as mean ± std over seeds and
repeats.

Variants:
  bare:      Trainer(..., progress=False), no run directory.
  callbacks: progress bar (tqdm, into a buffer), metrics.jsonl + meta/summary in a run directory, and a
             checkpoint at the end of every epoch.

The final parameters of the bare Trainer must equal the hand loop's bit for bit, and the losses logged in
metrics.jsonl must equal the hand loop's losses.

With ``--model linear`` (logistic regression, almost no compute) the difference in time per step is the
Trainer's own cost per step, in microseconds.

Usage: python benchmarks/trainer_overhead.py [--seeds 3] [--repeats 2] [--epochs 5] [--model cnn1d|linear]
"""

from __future__ import annotations

import argparse
import io
import itertools
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mean_std

from cadence import models
from cadence.callbacks.progress import ProgressBar
from cadence.data import TensorLoader
from cadence.hyperparams import set_hyperparams
from cadence.schedules import one_cycle, one_cycle_momentum
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer


def mnist1d_tensors(train_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    arguments = get_dataset_args()
    arguments.num_samples = max(arguments.num_samples, int(train_size / arguments.train_split) + 1)
    data = make_dataset(arguments)
    inputs = torch.tensor(data["x"][:train_size], dtype=torch.float32).unsqueeze(1)
    targets = torch.tensor(data["y"][:train_size], dtype=torch.long)
    return inputs, targets


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _elapsed(started: tuple[float, float]) -> dict[str, float]:
    # Wall time is what users feel; CPU time of this (single-threaded) process is what the loop costs and is
    # far less sensitive to other jobs competing for the cores.
    return {"wall": time.perf_counter() - started[0], "cpu": time.process_time() - started[1]}


class StepClock(Callback):
    """Time stamp after every update: the same instrumentation as the hand loop's ``stamps.append``."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_step_end(self, state) -> None:
        self.stamps.append(time.perf_counter())


def median_interval(stamps: list[float]) -> float:
    # The median time between consecutive updates ignores bursts where another process had the core, which
    # total times cannot; it leaves out per-epoch work (evaluation, checkpoints) by construction.
    return statistics.median(later - earlier for earlier, later in itertools.pairwise(stamps))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def schedules(total_steps: int) -> dict:
    return {
        "lr": one_cycle(max_lr=0.05, total_steps=total_steps),
        "momentum": one_cycle_momentum(total_steps=total_steps),
    }


MODEL = "cnn1d"


def setup(seed: int, inputs, targets, batch_size: int):
    torch.manual_seed(1000 + seed)
    if MODEL == "cnn1d":
        model = models.create("cnn1d", input_shape=(40,))
    else:  # logistic regression: almost no compute, so the difference per step is the loop's own cost
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = TensorLoader(inputs, targets, batch_size, seed=seed)
    return model, optimizer, loader


def hand_loop(seed, inputs, targets, batch_size, epochs):
    model, optimizer, loader = setup(seed, inputs, targets, batch_size)
    total_steps = epochs * len(loader)
    plan = schedules(total_steps)
    started = _clock()
    seed_everything(seed)
    losses, stamps, step = [], [], 0
    model.train()
    for epoch in range(epochs):
        for x, y in loader.batches(epoch):
            set_hyperparams(optimizer, step, **plan)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            stamps.append(time.perf_counter())
            step += 1
    return {**_elapsed(started), "step": median_interval(stamps)}, model, losses, total_steps


def trainer_run(seed, inputs, targets, batch_size, epochs, with_callbacks: bool, run_dir: Path | None):
    model, optimizer, loader = setup(seed, inputs, targets, batch_size)
    total_steps = epochs * len(loader)
    clock = StepClock()
    options = {"callbacks": [clock]}
    if with_callbacks:
        options = {
            "callbacks": [clock, ProgressBar(mode="bar", stream=io.StringIO())],
            "run_dir": run_dir,
            "checkpoint_every_epochs": 1,
        }
    started = _clock()
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
    return {**_elapsed(started), "step": median_interval(clock.stamps)}, model, total_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", choices=("cnn1d", "linear"), default="cnn1d")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    global MODEL
    MODEL = args.model
    torch.set_num_threads(args.threads)
    inputs, targets = mnist1d_tensors(args.train_size)
    clocks = ("wall", "cpu", "step")
    ratios = {clock: {"bare": [], "callbacks": []} for clock in clocks}
    per_step = {clock: {"hand": [], "bare": [], "callbacks": []} for clock in clocks}
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
                run_dir = Path(directory) / f"s{seed}-r{repeat}"
                for variant in order:
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
                    for clock in clocks:
                        per_step[clock][variant].append(
                            elapsed[clock] / (1 if clock == "step" else steps) * 1e3
                        )
                for clock in clocks:
                    for variant in ("bare", "callbacks"):
                        ratios[clock][variant].append(times[variant][clock] / times["hand"][clock])
                hand_state = results["hand"][0].state_dict()
                for variant in ("bare", "callbacks"):
                    state = results[variant][0].state_dict()
                    identical_parameters &= all(torch.equal(hand_state[k], state[k]) for k in hand_state)
                records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
                logged = [record["loss"] for record in records if record["kind"] == "train"]
                identical_losses &= logged == results["hand"][1]
                print(
                    f"seed {seed} repeat {repeat}: hand {times['hand']['wall']:.3f}s wall "
                    f"{times['hand']['cpu']:.3f}s cpu; ratios wall/cpu: "
                    f"bare {ratios['wall']['bare'][-1]:.3f}/{ratios['cpu']['bare'][-1]:.3f}  "
                    f"callbacks {ratios['wall']['callbacks'][-1]:.3f}/{ratios['cpu']['callbacks'][-1]:.3f}",
                    file=sys.stderr,
                    flush=True,
                )

    steps = args.epochs * -(-args.train_size // args.batch_size)
    print(
        f"MNIST-1D {args.model}, {args.train_size} examples, batch {args.batch_size}, {args.epochs} epochs "
        f"({steps} steps), torch {torch.__version__}, {args.threads} thread(s), "
        f"{args.seeds} seeds x {args.repeats} repeats"
    )
    for clock in clocks:
        for variant in ("hand", "bare", "callbacks"):
            mean, std = mean_std(per_step[clock][variant])
            print(f"  {clock:4s} time/step {variant:9s}: {mean:.3f} ± {std:.3f} ms")
        for variant in ("bare", "callbacks"):
            differences = [t - h for t, h in zip(per_step[clock][variant], per_step[clock]["hand"])]
            mean, std = mean_std(differences)
            print(f"  {clock:4s} Trainer({variant}) - hand: {mean * 1e3:+.1f} ± {std * 1e3:.1f} µs/step")
            mean, std = mean_std(ratios[clock][variant])
            median = statistics.median(ratios[clock][variant])
            print(
                f"  {clock:4s} ratio Trainer({variant}) / hand: {mean:.4f} ± {std:.4f} (median {median:.4f})"
            )
    print(f"  final parameters identical to the hand loop: {identical_parameters}")
    print(f"  logged losses identical to the hand loop's: {identical_losses}")
    if args.json is not None:
        raw = {"ratios": ratios, "per_step_ms": per_step}
        raw.update(identical_parameters=identical_parameters, identical_losses=identical_losses)
        args.json.write_text(json.dumps(raw, indent=2))
    return 0 if identical_parameters and identical_losses else 1


if __name__ == "__main__":
    sys.exit(main())
