"""Does ``max_lr="auto"`` (the LR finder's suggestion) train as well as the best max_lr of a grid search?

For each dataset: one-cycle training with SGD (Nesterov, momentum cycled 0.95 -> 0.85 -> 0.95) at every
max_lr of a log grid spanning three decades, and at the max_lr suggested by ``find_lr`` (run on a copy of the
freshly initialised model through ``resolve_auto_schedules``, as the Trainer does), 3 seeds each. Reports the
final test accuracy (mean ± std over seeds) and the finder's wall time as a fraction of the training time.

A plain training loop (model + schedule + ``set_hyperparams``) keeps this independent of the Trainer.
The CPU is small and shared: Fashion-MNIST uses a training subset and few epochs (see ``--help``).

    python benchmarks/lr_finder_auto.py                      # both datasets, writes the markdown table
    python benchmarks/lr_finder_auto.py --datasets mnist1d --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import held_out_accuracy, mean_std

from cadence.data import TensorLoader, load
from cadence.hyperparams import set_hyperparams
from cadence.lr_finder import resolve_auto_schedules

RESULTS = Path(__file__).parent / "results"


# ------------------------------------------------------------------------------------------- schedule
@dataclasses.dataclass(frozen=True)
class OneCycle:
    """torch.optim.lr_scheduler.OneCycleLR's shape (cosine, pct_start 0.3, div 25, final div 1e4).

    Accepts ``max_lr="auto"`` and implements the hand-off contract (``needs_lr_finder``/``with_lr``) so the
    benchmark does not depend on cadence.schedules being present.
    """

    max_lr: float | str
    total_steps: int
    pct_start: float = 0.3

    @property
    def needs_lr_finder(self) -> bool:
        return self.max_lr == "auto"

    def with_lr(self, max_lr: float) -> OneCycle:
        return dataclasses.replace(self, max_lr=float(max_lr))

    def _phase(self, step: int) -> tuple[float, float, float]:
        up = self.pct_start * self.total_steps - 1
        if step <= up:
            return step / up, 0.0, 1.0
        return (step - up) / (self.total_steps - 1 - up), 1.0, 0.0

    def __call__(self, step: int) -> float:
        top = float(self.max_lr)
        low, final = top / 25, top / 25 / 1e4
        t, start, _ = self._phase(min(step, self.total_steps - 1))
        begin, end = (low, top) if start == 0.0 else (top, final)
        return end + (begin - end) * (1 + math.cos(math.pi * t)) / 2

    def momentum(self, step: int) -> float:
        t, start, _ = self._phase(min(step, self.total_steps - 1))
        begin, end = (0.95, 0.85) if start == 0.0 else (0.85, 0.95)
        return end + (begin - end) * (1 + math.cos(math.pi * t)) / 2


# ------------------------------------------------------------------------------------------- models
def cnn1d() -> nn.Module:
    """The MNIST-1D reference CNN (Greydanus & Kobak): 3 conv1d layers of 25 channels, k=5, s=2, p=1."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(25 * 4, 10),
    )


def cnn28() -> nn.Module:
    """A small 28×28 CNN (two conv-ReLU-pool blocks of 8 and 16 channels, linear), sized for a 2-core CPU."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def cadence_cnn28() -> nn.Module:
    """cadence.models' cnn28 (two 5×5 conv blocks of 16 and 32 channels, dropout, global pool, MLP head)."""
    from cadence.models import create

    return create("cnn28", num_classes=10, input_shape=(1, 28, 28))


SETUPS = {
    "mnist1d": {"model": cnn1d, "data": {}, "epochs": 20, "batch_size": 100},
    "fashion-mnist": {
        "model": cnn28,
        "data": {"subset": 8000, "test_size": 2000},
        "epochs": 3,
        "batch_size": 128,
    },
    # Run after the hand-off's default rule was fixed: an out-of-sample check with cadence.models' cnn28.
    "fashion-mnist-cnn28": {
        "dataset": "fashion-mnist",
        "model": cadence_cnn28,
        "data": {"subset": 8000, "test_size": 2000},
        "epochs": 3,
        "batch_size": 128,
    },
}
DEFAULT_SETUPS = ["mnist1d", "fashion-mnist", "fashion-mnist-cnn28"]


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)


def train(setup: dict, data, schedule: OneCycle, seed: int, loader: TensorLoader) -> tuple[float, float]:
    """Train from the seed's initialisation with ``schedule``; returns (test accuracy %, seconds)."""
    torch.manual_seed(seed)
    model = setup["model"]()
    optimizer = make_optimizer(model)
    start = time.perf_counter()
    step = 0
    for epoch in range(setup["epochs"]):
        for inputs, targets in loader.batches(epoch):
            set_hyperparams(optimizer, step, lr=schedule, momentum=schedule.momentum)
            loss = functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    seconds = time.perf_counter() - start
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        return float("nan"), seconds
    return 100.0 * held_out_accuracy(model, data.test.inputs, data.test.targets, 1000), seconds


def auto_lrs(
    setup: dict, seed: int, loader: TensorLoader, total_steps: int, run_dir: Path
) -> tuple[dict, float]:
    """Resolve ``OneCycle("auto")`` for this seed's initial model; returns ({method: lr}, finder seconds)."""
    torch.manual_seed(seed)
    model = setup["model"]()
    optimizer = make_optimizer(model)
    start = time.perf_counter()
    resolved = resolve_auto_schedules(
        {"lr": OneCycle("auto", total_steps)},
        model=model,
        optimizer=optimizer,
        loss_fn=functional.cross_entropy,
        train_data=loader,
        run_dir=run_dir,
    )
    seconds = time.perf_counter() - start
    record = json.loads((run_dir / "lr_finder.json").read_text())
    values = dict(record["suggestions"])
    assert math.isclose(resolved["lr"].max_lr, values[record["method"]])
    values["trust"] = record["trust"]["verdict"]
    return values, seconds


def summarize(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return mean_std(finite)


def run_dataset(name: str, seeds: list[int], grid: list[float], output: Path) -> dict:
    setup = SETUPS[name]
    data = load(setup.get("dataset", name), **setup["data"])
    runs: list[dict] = []
    finder: list[dict] = []
    for seed in seeds:
        loader = TensorLoader(data.train.inputs, data.train.targets, setup["batch_size"], seed=seed)
        total_steps = setup["epochs"] * len(loader)
        values, finder_seconds = auto_lrs(setup, seed, loader, total_steps, output / f"{name}-seed{seed}")
        finder.append({"seed": seed, "seconds": finder_seconds, **values})
        print(f"[{name}] seed {seed}: finder {finder_seconds:.1f}s -> {values}", flush=True)
        candidates = [("grid", lr) for lr in grid] + [
            (f"auto-{method}", values[method])
            for method in ("valley", "steepest", "minimum")
            if method in values
        ]
        for label, lr in candidates:
            acc, seconds = train(setup, data, OneCycle(lr, total_steps), seed, loader)
            runs.append({"seed": seed, "label": label, "max_lr": lr, "accuracy": acc, "seconds": seconds})
            print(
                f"[{name}] seed {seed} {label:>14} max_lr={lr:.4g}: {acc:.2f}% in {seconds:.1f}s", flush=True
            )
    return {
        "dataset": name,
        "setup": {k: v for k, v in setup.items() if k != "model"},
        "train_size": len(data.train.targets),
        "test_size": len(data.test.targets),
        "runs": runs,
        "finder": finder,
    }


def markdown(results: list[dict], command: str, seconds: float) -> str:
    lines = [
        "# LR finder: auto max_lr vs a max_lr grid (one-cycle, SGD)",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "- machine: 2-core CPU, no GPU (shared with other jobs; `torch.set_num_threads(1)`); "
        f"torch {torch.__version__}, Python {platform.python_version()}",
        f"- command: `{command}` ({seconds / 60:.1f} min in all)",
        "- auto = `find_lr` defaults (1e-7 → 10, 100 steps, smoothing 0.98, stop at 4× the minimum) on the "
        "freshly initialised model, through `resolve_auto_schedules`; each auto row trains with one rule's "
        "value from the same sweep (`steepest` is the hand-off's default rule, `valley` find_lr's).",
        "- the hand-off's default rule (`steepest`) was chosen after seeing the `mnist1d` and "
        "`fashion-mnist` runs (run with `valley` as default; every rule's value comes from the same seeded "
        "sweep, so the rows are the same): there its rows are in-sample evidence. "
        "`fashion-mnist-cnn28` (cadence.models' cnn28) ran afterwards, unchanged: out of sample.",
        "- finder time includes the deep copy, the JSON record and the plot (matplotlib's first import).",
        "- GPU: not measured (no GPU).",
        "",
    ]
    for result in results:
        setup = result["setup"]
        runs = result["runs"]
        lines += [
            f"## {result['dataset']}",
            "",
            f"{result['train_size']} training / {result['test_size']} test examples, "
            f"batch {setup['batch_size']}, {setup['epochs']} epochs, {len(result['finder'])} seeds; "
            "test accuracy % (mean ± std over seeds).",
            "",
            "| max_lr | test accuracy % |",
            "|---|---|",
        ]
        grid_means = {}
        for lr in sorted({r["max_lr"] for r in runs if r["label"] == "grid"}):
            mean, std = summarize([r["accuracy"] for r in runs if r["label"] == "grid" and r["max_lr"] == lr])
            grid_means[lr] = mean
            lines.append(f"| {lr:.3g} | {mean:.2f} ± {std:.2f} |")
        best_lr = max(
            (lr for lr in grid_means if math.isfinite(grid_means[lr])), key=lambda lr: grid_means[lr]
        )
        best = grid_means[best_lr]
        for label in ("auto-valley", "auto-steepest", "auto-minimum"):
            chosen = [r for r in runs if r["label"] == label]
            if not chosen:
                continue
            mean, std = summarize([r["accuracy"] for r in chosen])
            lrs = [r["max_lr"] for r in chosen]
            geo = 10 ** np.mean(np.log10(lrs))
            default = {"auto-steepest": " (hand-off default)", "auto-valley": " (find_lr default)"}.get(
                label, ""
            )
            lines.append(
                f"| **{label}{default}**: {geo:.3g} (seeds: {', '.join(f'{v:.3g}' for v in lrs)}) | "
                f"**{mean:.2f} ± {std:.2f}** ({mean - best:+.2f} vs grid best) |"
            )
        finder_seconds = statistics.mean(f["seconds"] for f in result["finder"])
        train_seconds = statistics.mean(r["seconds"] for r in runs)
        verdicts = ", ".join(f["trust"] for f in result["finder"])
        train_steps = setup["epochs"] * math.ceil(result["train_size"] / setup["batch_size"])
        handoff = summarize([r["accuracy"] for r in runs if r["label"] == "auto-steepest"])[0]
        goal = "met" if handoff >= best - 0.5 else "not met"
        lines += [
            "",
            f"Grid best: max_lr {best_lr:.3g} at {best:.2f}%. Goal (hand-off default within 0.5 points of "
            f"the grid's best): {goal} ({handoff - best:+.2f}). Finder cost: {finder_seconds:.1f} s per "
            f"sweep vs {train_seconds:.1f} s per training run = {100 * finder_seconds / train_seconds:.0f}% "
            f"of the training time (at most 100 finder steps vs {train_steps} training steps; wall times "
            f"on a shared CPU are noisy). Trust verdicts per seed: {verdicts}.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_SETUPS, choices=list(SETUPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--grid-points", type=int, default=8, help="log-spaced max_lr values (default 8)")
    parser.add_argument("--grid-low", type=float, default=10**-2.5, help="lowest grid max_lr")
    parser.add_argument("--decades", type=float, default=3.0, help="grid span in decades (default 3)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--render", type=Path, nargs="+", default=None, help="only rewrite the table from result JSON files"
    )
    parser.add_argument("--seconds", type=float, default=float("nan"), help="total time, for --render")
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = {"seconds": 0.0, "results": []}
        for path in args.render:  # several result files (runs made at different times) in one table
            part = json.loads(path.read_text())
            if isinstance(part, list):  # written before the total time was stored with the results
                part = {"seconds": args.seconds, "results": part}
            saved["seconds"] += part["seconds"]
            saved["results"] += part["results"]
        command = "python benchmarks/lr_finder_auto.py`; table: `... --render " + " ".join(
            map(str, args.render)
        )
        text = markdown(saved["results"], command, saved["seconds"])
        (args.output / "lr_finder_auto.md").write_text(text + "\n")
        print(text)
        return 0
    torch.set_num_threads(1)
    grid = [float(v) for v in np.geomspace(args.grid_low, args.grid_low * 10**args.decades, args.grid_points)]
    work = Path("/tmp") / "cadence-lr-finder-benchmark"
    start = time.perf_counter()
    results = [run_dataset(name, args.seeds, grid, work) for name in args.datasets]
    seconds = time.perf_counter() - start
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "lr_finder_auto.json").write_text(
        json.dumps({"seconds": seconds, "results": results}, indent=1)
    )
    command = "python benchmarks/lr_finder_auto.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(results, command.strip(), seconds)
    (args.output / "lr_finder_auto.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
