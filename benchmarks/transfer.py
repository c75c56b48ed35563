"""EfficientNet-Lite0 (ImageNet) on Fashion-MNIST: linear probe vs fine_tune vs training from scratch.

Arms, each with 3 seeds (same data subset; the seed changes head initialisation and batch order):

- ``probe``: :func:`cadence.transfer.features.precompute_features` of the frozen pretrained body once (timed
  separately: the same features serve all seeds), then a linear head trained on the features
  (AdamW, one-cycle, ``--probe-epochs`` epochs);
- ``fine_tune``: :func:`cadence.transfer.fine_tune.fine_tune` — ``--freeze-epochs`` on the head with the body
  frozen, then ``--epochs`` on everything with discriminative LRs (lr_mult 100) and one-cycle;
- ``scratch``: the same network randomly initialised, AdamW + one-cycle for ``freeze_epochs + epochs``
  epochs (the same number of passes as fine_tune).

Also measured: one head-training epoch with the frozen body in the loop vs one epoch on precomputed
features, i.e. the speed-up that precomputing buys while the body is frozen.

    python benchmarks/transfer.py                                            # shrunk run reported
    python benchmarks/transfer.py --train 10000 --test 2000 --image-size 64 --epochs 2   # issue's size

The Fashion-MNIST subsets come from ``cadence.data.load("fashion-mnist", subset=..., test_size=...)``:
fixed random subsets (``subset_seed`` 0, original order kept). Results in benchmarks/results from before
this loader was used drew their subsets with a NumPy permutation instead, so they used other images.
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
from _common import fashion_tensors, held_out_accuracy, run_record

from cadence.data import TensorLoader
from cadence.schedules import one_cycle
from cadence.train.trainer import Trainer
from cadence.transfer.features import precompute_features
from cadence.transfer.fine_tune import fine_tune
from cadence.transfer.pretrained import efficientnet_lite0


def train_head(features, targets, seed: int, args) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], 10)
    loader = TensorLoader(features, targets, args.batch_size, seed=seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.probe_lr, weight_decay=0.01)
    trainer = Trainer(
        head, optimizer, F.cross_entropy, loader, epochs=args.probe_epochs, device="cpu", progress=False,
        schedules={"lr": one_cycle(max_lr=args.probe_lr, total_steps=args.probe_epochs * len(loader))},
        seed=seed, eval_every_epochs=None, checkpoint_every_epochs=None,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit()
    return head, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-lr", type=float, default=2e-3)
    parser.add_argument("--lr-mult", type=float, default=100.0)
    parser.add_argument("--scratch-lr", type=float, default=5e-3)
    parser.add_argument("--probe-lr", type=float, default=1e-2)
    parser.add_argument("--probe-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", default="probe,fine_tune,scratch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/transfer.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, y_train, x_test, y_test = fashion_tensors(args.train, args.test)
    arms = args.arms.split(",")
    runs: list[dict] = []
    extra: dict = {}

    def log(record: dict) -> None:
        runs.append(record)
        print(json.dumps(record), flush=True)

    if "probe" in arms:
        model = efficientnet_lite0(10, image_size=args.image_size)
        body = model.body()
        start, cpu = time.perf_counter(), time.process_time()
        train_features = precompute_features(body, (x_train, y_train), batch_size=256)
        test_features = precompute_features(body, (x_test, y_test), batch_size=256)
        extra["precompute_seconds"] = time.perf_counter() - start
        extra["precompute_cpu_seconds"] = time.process_time() - cpu
        extra["feature_dim"] = train_features.inputs.shape[1]
        for seed in range(args.seeds):
            cpu = time.process_time()
            head, wall = train_head(train_features.inputs, train_features.targets, seed, args)
            cpu = time.process_time() - cpu + extra["precompute_cpu_seconds"]
            score = held_out_accuracy(head, test_features.inputs, test_features.targets, 256)
            log({"arm": "probe", "seed": seed, "wall_time": wall + extra["precompute_seconds"],
                 "cpu_time": cpu, "head_seconds": wall, "accuracy": score})  # fmt: skip

        # One head epoch with the frozen body in the loop vs one epoch on the features.
        head = model.head()
        for param in body.parameters():
            param.requires_grad_(False)
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
        model.train()
        start = time.perf_counter()
        for i in range(0, len(x_train), args.batch_size):
            loss = F.cross_entropy(model(x_train[i : i + args.batch_size]), y_train[i : i + args.batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        extra["head_epoch_with_body_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(0, len(x_train), args.batch_size):
            rows = slice(i, i + args.batch_size)
            loss = F.cross_entropy(head(train_features.inputs[rows]), y_train[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        extra["head_epoch_on_features_seconds"] = time.perf_counter() - start

    for seed in range(args.seeds):
        if "fine_tune" in arms:
            torch.manual_seed(seed)
            model = efficientnet_lite0(10, image_size=args.image_size)
            start, cpu = time.perf_counter(), time.process_time()
            fine_tune(
                model, TensorLoader(x_train, y_train, args.batch_size, seed=seed), head=model.head(),
                freeze_epochs=args.freeze_epochs, epochs=args.epochs, base_lr=args.base_lr, seed=seed,
                lr_mult=args.lr_mult,
                device="cpu", progress=False, eval_every_epochs=None, checkpoint_every_epochs=None,
            )  # fmt: skip
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            log({"arm": "fine_tune", "seed": seed, "wall_time": wall, "cpu_time": cpu,
                 "accuracy": held_out_accuracy(model, x_test, y_test, 256)})  # fmt: skip
        if "scratch" in arms:
            torch.manual_seed(seed)
            model = efficientnet_lite0(10, weights=None, image_size=args.image_size)
            loader = TensorLoader(x_train, y_train, args.batch_size, seed=seed)
            epochs = args.freeze_epochs + args.epochs
            optimizer = torch.optim.AdamW(model.parameters(), lr=args.scratch_lr, weight_decay=0.01)
            trainer = Trainer(
                model, optimizer, F.cross_entropy, loader, epochs=epochs, device="cpu", progress=False,
                schedules={"lr": one_cycle(max_lr=args.scratch_lr, total_steps=epochs * len(loader))},
                seed=seed, eval_every_epochs=None, checkpoint_every_epochs=None,
            )  # fmt: skip
            start, cpu = time.perf_counter(), time.process_time()
            trainer.fit()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            log({"arm": "scratch", "seed": seed, "wall_time": wall, "cpu_time": cpu,
                 "accuracy": held_out_accuracy(model, x_test, y_test, 256)})  # fmt: skip

    summary = {}
    for arm in arms:
        rows = [r for r in runs if r["arm"] == arm]
        if rows:
            summary[arm] = {
                key: statistics.mean(r[key] for r in rows) for key in ("accuracy", "wall_time", "cpu_time")
            } | {f"{key}_std": statistics.stdev(r[key] for r in rows) if len(rows) > 1 else 0.0
                 for key in ("accuracy", "wall_time", "cpu_time")}  # fmt: skip
    record = {
        **run_record(args),
        "runs": runs,
        "extra": extra,
        "summary": summary,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2))
    print(json.dumps({"summary": summary, "extra": extra}, indent=2))


if __name__ == "__main__":
    main()
