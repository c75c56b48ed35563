"""FreezeOut against the same cosine schedule without freezing, on cnn28 and resnet-small (Fashion-MNIST).

Both arms use SGD with Nesterov momentum 0.9, the same base LR, batch size, data order and initialisation;
the baseline anneals every group with one cosine from ``lr`` to 0 over training, FreezeOut (t0=0.8, cubic,
scale_lr) anneals group i to 0 at t_i and then freezes it. Wall time is the training loop only (no
evaluation), measured side by side in one process, seeds interleaved so machine load hits both arms alike.

    python benchmarks/freezeout.py                      # the shrunk run reported in benchmarks/results
    python benchmarks/freezeout.py --train 60000 --test 10000 --epochs 20   # full size

The Fashion-MNIST subsets come from ``cadence.data.load("fashion-mnist", subset=..., test_size=...)``:
fixed random subsets (``subset_seed`` 0, original order kept). Results in benchmarks/results from before
this loader was used drew their subsets with a NumPy permutation instead, so they used other images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fashion_tensors, held_out_accuracy, mean_std, run_record, significance

from cadence.freezing import apply_freezeout, freezeout_param_groups
from cadence.transfer.freezing import optimizer_group_index
from cadence.transfer.param_groups import layer_groups


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_block(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def local_model(name: str) -> nn.Module:
    """Fallback definitions used when cadence.models is not available."""
    if name == "cnn28":
        return nn.Sequential(
            conv_block(1, 32), conv_block(32, 32), nn.MaxPool2d(2),
            conv_block(32, 64), conv_block(64, 64), nn.MaxPool2d(2),
            nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU()), nn.Linear(128, 10),
        )  # fmt: skip
    if name == "resnet-small":
        return nn.Sequential(
            conv_block(1, 16),
            BasicBlock(16, 16, 1), BasicBlock(16, 16, 1),
            BasicBlock(16, 32, 2), BasicBlock(32, 32, 1),
            BasicBlock(32, 64, 2), BasicBlock(64, 64, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
        )  # fmt: skip
    raise ValueError(name)


def make_model(name: str) -> tuple[nn.Module, str]:
    try:
        from cadence.models import create  # type: ignore[attr-defined]

        options = {"in_channels": 1, "blocks": (2, 2, 2)} if name == "resnet-small" else {}
        return create(name, num_classes=10, **options), "cadence.models"
    except Exception:  # the registry may not exist or not know the name: use the local definition
        return local_model(name), "benchmarks/freezeout.py (local definition)"


def run(arm: str, model_name: str, data, seed: int, args, t0: float | None = None) -> dict:
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model, source = make_model(model_name)
    groups = layer_groups(model, example_input=x_train[:2], expand_sequential=True)
    optimizer = torch.optim.SGD(
        freezeout_param_groups(groups), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    index = optimizer_group_index(optimizer, groups)
    steps_per_epoch = len(x_train) // args.batch_size
    total = steps_per_epoch * args.epochs
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    step = 0
    start_time, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(args.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for batch in range(steps_per_epoch):
            rows = order[batch * args.batch_size : (batch + 1) * args.batch_size]
            if arm == "freezeout":
                apply_freezeout(optimizer, groups, step, total, args.lr, t0=t0, group_index=index)
            else:
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * args.lr * (1 + math.cos(math.pi * step / total))
            loss = loss_fn(model(x_train[rows]), y_train[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    wall, cpu = time.perf_counter() - start_time, time.process_time() - start_cpu
    return {
        "arm": arm, "t0": t0, "model": model_name, "seed": seed, "wall_time": wall, "cpu_time": cpu,
        "accuracy": held_out_accuracy(model, x_test, y_test), "groups": len(groups), "model_source": source,
    }  # fmt: skip


def arm_name(result: dict) -> str:
    return "baseline" if result["arm"] == "baseline" else f"freezeout t0={result['t0']}"


def summarize(results: list[dict], models: list[str]) -> dict:
    """Per model and arm: accuracy, wall and CPU time (mean, std); savings and accuracy change by seed."""
    summary: dict = {}
    for model_name in models:
        mine = [r for r in results if r["model"] == model_name]
        arms = list(dict.fromkeys(arm_name(r) for r in mine))
        rows = {arm: sorted((r for r in mine if arm_name(r) == arm), key=lambda r: r["seed"]) for arm in arms}
        entry: dict = {}
        for arm, arm_rows in rows.items():
            for key in ("accuracy", "wall_time", "cpu_time"):
                entry[f"{arm}_{key}"] = mean_std([r[key] for r in arm_rows])
            if arm == "baseline":
                continue
            for key in ("wall_time", "cpu_time"):
                pairs = zip(rows["baseline"], arm_rows)
                entry[f"{arm}_saving_{key}"] = mean_std([1 - f[key] / b[key] for b, f in pairs])
            pairs = zip(rows["baseline"], arm_rows)
            entry[f"{arm}_accuracy_change"] = mean_std([f["accuracy"] - b["accuracy"] for b, f in pairs])
            entry[f"{arm}_significance"] = significance(
                [r["accuracy"] for r in arm_rows],
                [r["accuracy"] for r in rows["baseline"]],
                arm,
                "baseline",
                "accuracy",
            )
        summary[model_name] = entry
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--t0", type=float, nargs="+", default=[0.8], help="one FreezeOut arm per value")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default="cnn28,resnet-small")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/freezeout.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = fashion_tensors(args.train, args.test)
    results = []
    for model_name in args.models.split(","):
        for seed in range(args.seeds):
            arms = [("baseline", None)] + [("freezeout", t0) for t0 in args.t0]
            for arm, t0 in arms if seed % 2 == 0 else arms[::-1]:  # interleaved: load hits every arm alike
                result = run(arm, model_name, data, seed, args, t0)
                results.append(result)
                print(json.dumps(result), flush=True)
    summary = summarize(results, args.models.split(","))
    record = {**run_record(args), "runs": results, "summary": summary}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
