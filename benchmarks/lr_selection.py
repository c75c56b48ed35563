"""Does ``max_lr="auto"`` land on the best max_lr of a grid search, and how do the peers' finders compare?

For each task: one-cycle training (LR and momentum / β₁ cycled) at every max_lr of a log grid over three
decades, at cadence's automatic choice (the race at several budgets, and the sweep-only rules), and at the
suggestions of torch-lr-finder (``LRFinder.plot(suggest_lr=True)``: steepest gradient) and Lightning
(``Tuner.lr_find(...).suggestion()``), each from the same freshly initialised model. Every finder sweeps
1e-6 .. 10 in 100 updates; fastai is not measured (it needs torchvision, several GB on this machine).

All runs train with cadence's Trainer on the whole training split and are scored once, at the end, on the
test split. The race judges its candidates on a validation split carved from the training data, never on
the test split. A run that ends non-finite counts as a failure at chance accuracy (it is not dropped).

Tasks (the last two were chosen before any tuning and were not looked at while the race was designed):

- ``mnist1d-adam``: MNIST-1D (4000 / 1000), reference CNN, Adam, batch 100, 1500 steps;
- ``mnist1d-sgd``: the same with SGD + Nesterov momentum 0.9, weight decay 5e-4;
- ``fashion-sgd``: Fashion-MNIST, the tutorial's cnn28, SGD + Nesterov, batch 64; shrunk to a 10k training
  subset and 4 epochs (628 steps) to fit this CPU, full 10k test set (``--fashion-subset``,
  ``--fashion-epochs``); the stress case, where one-cycle cannot get near the model's accuracy;
- ``fashion20k-sgd``: the same on a 20k subset (1252 steps), the Fashion-MNIST task of the card;
- ``digits-sgd`` (held out): scikit-learn digits 8×8 (1438 / 359), MLP 2×100, SGD + momentum, batch 32,
  20 epochs;
- ``mnist5k-adamw`` (held out): MNIST 5k subset (4000 / 1000), cnn28, AdamW (wd 1e-2), batch 64, 5 epochs.

    python benchmarks/lr_selection.py --tasks mnist1d-adam mnist1d-sgd --seeds 3    # results/*.json
    python benchmarks/lr_selection.py --report                                      # the markdown table
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, format_mean_std, machine, mean_std, start

from cadence.data import TensorLoader, load
from cadence.lr_finder.race import select_lr
from cadence.models import create
from cadence.schedules import one_cycle
from cadence.train.trainer import Trainer

GRID = [float(v) for v in np.geomspace(1e-3, 1.0, 10)]


def grid_values(points: int) -> list[float]:
    """``points`` max_lr values log-spaced over 1e-3 .. 1 (10: the default grid; 7: half-decade steps)."""
    return GRID if points == len(GRID) else [float(v) for v in np.geomspace(1e-3, 1.0, points)]


SWEEP = {"start_lr": 1e-6, "end_lr": 10.0, "num_steps": 100}
BUDGETS = (0.3, 0.5, 1.0, 2.0, 3.0)
RULES = ("valley", "steepest", "minimum")
JSON_DIR = RESULTS / "lr_selection"


def task_spec(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "mnist1d-adam":
        return {"data": ("mnist1d", {}), "model": "cnn1d", "optimizer": "adam", "batch": 100, "steps": 1500}
    if name == "mnist1d-sgd":
        return {"data": ("mnist1d", {}), "model": "cnn1d", "optimizer": "sgd", "batch": 100, "steps": 1500}
    if name == "fashion-sgd":
        data = ("fashion-mnist", {"subset": args.fashion_subset})
        steps = args.fashion_epochs * math.ceil(args.fashion_subset / 64)
        return {"data": data, "model": "cnn28", "optimizer": "sgd", "batch": 64, "steps": steps}
    if name == "fashion20k-sgd":
        steps = 4 * math.ceil(20000 / 64)
        return {
            "data": ("fashion-mnist", {"subset": 20000}),
            "model": "cnn28",
            "optimizer": "sgd",
            "batch": 64,
            "steps": steps,
        }
    if name == "digits-sgd":
        return {
            "data": ("digits", {}),
            "model": "mlp",
            "optimizer": "sgd-plain",
            "batch": 32,
            "steps": 20 * math.ceil(1438 / 32),
        }
    if name == "mnist5k-adamw":
        return {
            "data": ("mnist5k", {}),
            "model": "cnn28",
            "optimizer": "adamw",
            "batch": 64,
            "steps": 5 * math.ceil(4000 / 64),
        }
    raise SystemExit(f"unknown task {name!r}")


TASKS = ("mnist1d-adam", "mnist1d-sgd", "fashion-sgd", "fashion20k-sgd", "digits-sgd", "mnist5k-adamw")


def make_optimizer(kind: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    if kind == "sgd-plain":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)


class Task:
    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.spec = task_spec(name, args)
        dataset, options = self.spec["data"]
        self.splits = load(dataset, **options)
        self.steps = int(self.spec["steps"])

    def model(self, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create(
            self.spec["model"], num_classes=self.splits.num_classes, input_shape=self.splits.input_shape
        )

    def loader(self, seed: int) -> TensorLoader:
        return TensorLoader(
            self.splits.train.inputs, self.splits.train.targets, self.spec["batch"], seed=seed
        )

    def schedules(self, max_lr: float | str) -> dict[str, Any]:
        lr = one_cycle(max_lr, total_steps=self.steps)
        return {"lr": lr, "momentum": lr.momentum()}

    def train(self, max_lr: float, seed: int) -> dict[str, Any]:
        model = self.model(seed)
        test = TensorLoader(self.splits.test.inputs, self.splits.test.targets, 1000, shuffle=False)
        trainer = Trainer(
            model,
            make_optimizer(self.spec["optimizer"], model),
            functional.cross_entropy,
            self.loader(seed),
            total_steps=self.steps,
            schedules=self.schedules(max_lr),
            eval_data=test,
            seed=seed,
            progress=False,
            checkpoint_every_epochs=None,
            eval_every_epochs=None,
            device="cpu",
        )
        state = trainer.fit()
        accuracy = state.metrics.get("val_accuracy", float("nan"))
        finite = math.isfinite(state.metrics.get("val_loss", float("nan"))) and trainer.status != "diverged"
        return {
            "accuracy": float(accuracy) if finite else 1.0 / self.splits.num_classes,
            "failed": not finite,
        }


#: cadence's methods measured here: name -> select_lr options.
VARIANTS: dict[str, dict[str, Any]] = {
    **{f"race {budget:g}": {"budget": budget} for budget in BUDGETS},
    "race 1, no vertex": {"budget": 1.0, "refine_vertex": False},
    **{f"sweep {rule}": {"method": "sweep", "rule": rule} for rule in RULES},
}


def cadence_choice(task: Task, seed: int, options: dict[str, Any]) -> tuple[float, float]:
    """``(max_lr, cost as a fraction of one run)`` chosen by ``select_lr(**options)`` for ``task``."""
    model = task.model(seed)
    selection = select_lr(
        model,
        make_optimizer(task.spec["optimizer"], model),
        functional.cross_entropy,
        task.loader(seed),
        task.schedules("auto"),
        total_steps=task.steps,
        sweep_options=SWEEP,
        seed=seed,
        trainer_options={"device": "cpu"},
        **options,
    )
    return selection.value, selection.cost_fraction


def _torch_loader(task: Task, seed: int):
    dataset = torch.utils.data.TensorDataset(task.splits.train.inputs, task.splits.train.targets)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=task.spec["batch"], shuffle=True, generator=generator
    )


def torch_lr_finder_choice(task: Task, seed: int) -> float:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from torch_lr_finder import LRFinder

    model = task.model(seed)
    optimizer = make_optimizer(task.spec["optimizer"], model)
    finder = LRFinder(model, optimizer, functional.cross_entropy, device="cpu")
    finder.range_test(
        _torch_loader(task, seed),
        start_lr=SWEEP["start_lr"],
        end_lr=SWEEP["end_lr"],
        num_iter=SWEEP["num_steps"],
    )
    _, suggestion = finder.plot(suggest_lr=True)
    pyplot.close("all")
    return float(suggestion)


def lightning_choice(task: Task, seed: int) -> float:
    import lightning.pytorch as lightning
    from lightning.pytorch.tuner import Tuner

    network = task.model(seed)
    optimizer_kind = task.spec["optimizer"]

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.network = network
            self.lr = 1e-3

        def training_step(self, batch, batch_index):
            inputs, targets = batch
            return functional.cross_entropy(self.network(inputs), targets)

        def configure_optimizers(self):
            optimizer = make_optimizer(optimizer_kind, self.network)
            for group in optimizer.param_groups:
                group["lr"] = self.lr
            return optimizer

    with tempfile.TemporaryDirectory() as root:
        trainer = lightning.Trainer(
            max_epochs=1000,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
        )
        result = Tuner(trainer).lr_find(
            Module(),
            train_dataloaders=_torch_loader(task, seed),
            min_lr=SWEEP["start_lr"],
            max_lr=SWEEP["end_lr"],
            num_training=SWEEP["num_steps"],
        )
        return float(result.suggestion())


def run_task(name: str, seeds: list[int], args: argparse.Namespace) -> None:
    task = Task(name, args)
    if args.steps:
        task.steps = task.spec["steps"] = args.steps
    json_dir = args.out / "lr_selection" if args.out else JSON_DIR
    path = json_dir / f"{name}.json"
    record = json.loads(path.read_text()) if path.exists() else {"task": name, "spec": task.spec, "runs": {}}
    record["spec"] = {**task.spec, "data": list(task.spec["data"])}
    cache = record["runs"]

    def save() -> None:
        json_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")

    def trained(method: str, seed: int, max_lr: float, cost: float | None) -> None:
        key = f"{method}|{seed}"
        if key in cache:
            return
        started = time.perf_counter()
        result = task.train(max_lr, seed)
        cache[key] = {
            "method": method,
            "seed": seed,
            "max_lr": max_lr,
            "cost": cost,
            **result,
            "seconds": time.perf_counter() - started,
        }
        print(
            f"{name} seed {seed} {method:>16}: max_lr {max_lr:.4g} -> {100 * result['accuracy']:.2f}%"
            + (" FAILED" if result["failed"] else ""),
            flush=True,
        )
        save()

    for seed in seeds:
        for max_lr in grid_values(args.grid_points):
            trained(f"grid {max_lr:.3g}", seed, max_lr, None)
        if not args.grid_only:
            for method, options in VARIANTS.items():
                if args.variants and method not in args.variants:
                    continue
                if f"{method}|{seed}" not in cache:
                    trained(method, seed, *cadence_choice(task, seed, options))
            for method, finder in (
                ()
                if args.no_peers
                else (
                    ("torch-lr-finder", torch_lr_finder_choice),
                    ("lightning", lightning_choice),
                )
            ):
                if f"{method}|{seed}" not in cache:
                    try:
                        value = finder(task, seed)
                    except ImportError as error:
                        print(f"{method} not installed ({error}); skipped", flush=True)
                        continue
                    trained(method, seed, value, SWEEP["num_steps"] / task.steps)


def report(started: str, results: Path = RESULTS) -> Path:
    lines = [
        "# Automatic max_lr against a grid search and the peers' LR finders",
        "",
        f"- written {started} (UTC) from the per-run records in `results/lr_selection/*.json` (each run's "
        f"seconds are there); {machine()}; torch {torch.__version__}, one thread per process",
        "- commands: `python benchmarks/lr_selection.py --tasks TASK --seeds 3` per task, then "
        "`python benchmarks/lr_selection.py --report`",
        "- grid: 10 max_lr values log-spaced over 1e-3 .. 1 (--grid-points to change); one-cycle "
        "(torch's OneCycleLR shape) with momentum / beta1 cycled 0.95 -> 0.85; every finder sweeps "
        "1e-6 .. 10 in 100 updates",
        "- accuracy: test split, at the end of the run; a non-finite run counts at chance accuracy",
        "- gap: mean accuracy minus the best grid point's mean accuracy (points); cost: optimizer steps "
        "spent choosing, as a fraction of one training run",
        "",
    ]
    for path in sorted((results / "lr_selection").glob("*.json")):
        record = json.loads(path.read_text())
        rows: dict[str, list[dict[str, Any]]] = {}
        for run in record["runs"].values():
            rows.setdefault(run["method"], []).append(run)
        grid = {m: r for m, r in rows.items() if m.startswith("grid ")}
        if not grid:
            continue
        best_method = max(grid, key=lambda m: mean_std([r["accuracy"] for r in grid[m]])[0])
        best = mean_std([r["accuracy"] for r in grid[best_method]])[0]
        spec = record["spec"]
        seeds = sorted({r["seed"] for r in grid[best_method]})
        lines += [
            f"## {record['task']}",
            "",
            f"{spec['data'][0]} {spec['data'][1] or ''}, {spec['model']}, {spec['optimizer']}, batch "
            f"{spec['batch']}, {spec['steps']} steps; seeds: {seeds}",
            "",
            "| method | max_lr (geo. mean) | test accuracy (%) | gap to grid best (points) | failed "
            "| cost (runs) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        order = sorted(grid, key=lambda m: float(m.split()[1])) + [m for m in rows if m not in grid]
        for method in order:
            runs = rows[method]
            accuracies = [r["accuracy"] for r in runs]
            mean = mean_std(accuracies)[0]
            lr = 10 ** np.mean([math.log10(r["max_lr"]) for r in runs])
            costs = [r["cost"] for r in runs if r["cost"] is not None]
            cost = f"{np.mean(costs):.2f}" if costs else "—"
            marker = " (grid best)" if method == best_method else ""
            lines.append(
                f"| {method}{marker} | {lr:.3g} | {format_mean_std(accuracies)} | "
                f"{100 * (mean - best):+.2f} | {sum(r['failed'] for r in runs)}/{len(runs)} | {cost} |"
            )
        lines.append("")
    out = results / "lr_selection.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=[])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--grid-only", action="store_true")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        default=[],
        help="cadence methods to run (default: all)",
    )
    parser.add_argument("--grid-points", type=int, default=len(GRID), help="max_lr grid size over 1e-3 .. 1")
    parser.add_argument("--fashion-subset", type=int, default=10000)
    parser.add_argument("--fashion-epochs", type=int, default=4)
    parser.add_argument("--report", action="store_true", help="write results/lr_selection.md from the JSON")
    parser.add_argument("--steps", type=int, default=0, help="steps per run (smoke tests)")
    parser.add_argument("--no-peers", action="store_true", help="skip torch-lr-finder and Lightning")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default: benchmarks/results)",
    )
    args = parser.parse_args()
    started, _ = start(threads=1)
    for name in args.tasks:
        run_task(name, list(range(args.first_seed, args.first_seed + args.seeds)), args)
    if args.report:
        print(f"wrote {report(started, args.out or RESULTS)}")


if __name__ == "__main__":
    main()
