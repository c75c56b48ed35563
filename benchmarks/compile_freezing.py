"""FreezeOut under ``torch.compile``: recompiles, compile time and step time of three ways to run it.

A 10-group MLP (nine ``Linear(256, 256) + ReLU`` blocks and a linear head; FreezeOut with ``n_groups=10``,
``t0=0.5``, linear times) trained by the Trainer for ``--steps`` steps on random inputs labelled by a random
linear teacher (1024 samples, 10 classes, batches of 128, evaluation every 5 epochs); nine groups freeze
during the run, the last one at the end.

Variants:
  eager:                 compile=False; freezing sets requires_grad=False (backward stops at the first
                         trainable group).
  compiled, requires_grad: compile=True with freezing by requires_grad (what the Trainer did before it froze
                         without recompiling under compile): every freezing stage changes the graph's guards.
  compiled:              compile=True as the Trainer runs it now: frozen parameters keep requires_grad and
                         lose their gradients before each update, the graph stays the same.

Per run: graphs compiled by Dynamo (``torch._dynamo.utils.counters["stats"]["unique_graphs"]``; the first
training graph and the evaluation graph make 2), whether Dynamo hit its recompile limit (after which the
frame runs eagerly), the time spent compiling (Dynamo's ``compile_inner`` timer, backend included), the
whole fit, and the median time of a step between 10% and 45% of training (nothing frozen yet) and in the
last 20% (most groups frozen: where FreezeOut saves time). Caches are off (``TORCHINDUCTOR_FX_GRAPH_CACHE=0``,
``TORCHINDUCTOR_AUTOGRAD_CACHE=0``) and Dynamo is reset before each run, so every run compiles from scratch.
One torch thread.

Usage: python benchmarks/compile_freezing.py [--repeats 3] [--steps 200] [--backend inductor] [--out FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import format_mean_std, report_header, start

from cadence.callbacks.freezeout import FreezeOut
from cadence.freezing import freezeout_param_groups
from cadence.train import Callback, Trainer
from cadence.train.state import TrainState

GROUPS = 10
WIDTH = 256
VARIANTS = ("eager", "compiled, requires_grad", "compiled")


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    blocks = [nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(GROUPS - 1)]
    model = nn.Sequential(*blocks, nn.Linear(WIDTH, 10))
    for block in blocks:  # He initialisation: the signal survives ten layers, so the MLP learns
        nn.init.kaiming_normal_(block[0].weight, nonlinearity="relu")
        nn.init.zeros_(block[0].bias)
    return model


def make_data(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """1024 samples labelled by a random linear teacher (learnable), in batches of 128."""
    generator = torch.Generator().manual_seed(1000 + seed)
    inputs = torch.randn(1024, WIDTH, generator=generator)
    targets = (inputs @ torch.randn(WIDTH, 10, generator=generator)).argmax(dim=1)
    return [(inputs[i : i + 128], targets[i : i + 128]) for i in range(0, 1024, 128)]


class StepClock(Callback):
    """Time stamps after every update; optionally forces freezing by requires_grad."""

    def __init__(self, by_requires_grad: bool | None) -> None:
        self.by_requires_grad = by_requires_grad
        self.stamps: list[float] = []

    def on_fit_start(self, state: TrainState) -> None:
        if self.by_requires_grad is not None:
            state.freeze_by_requires_grad = self.by_requires_grad
        self.stamps = [time.perf_counter()]

    def on_step_end(self, state: TrainState) -> None:
        self.stamps.append(time.perf_counter())


def compile_seconds() -> float:
    times = torch._dynamo.utils.compilation_time_metrics
    return sum(sum(values) for key, values in times.items() if key.endswith("compile_inner"))


def run(variant: str, seed: int, steps: int, backend: str) -> dict[str, Any]:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch._dynamo.utils.compilation_time_metrics.clear()
    model = make_model(seed)
    optimizer = torch.optim.SGD(freezeout_param_groups(model, n_groups=GROUPS), lr=0.05, momentum=0.9)
    clock = StepClock(True if variant == "compiled, requires_grad" else None)
    data = make_data(seed)
    trainer = Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        data,
        total_steps=steps,
        schedules={"lr": 0.05},
        eval_data=data,
        eval_every_epochs=5,
        callbacks=[clock, FreezeOut(t0=0.5, cubic=False, n_groups=GROUPS)],
        compile=False if variant == "eager" else {"backend": backend},
        progress=False,
        seed=seed,
    )
    begin = time.perf_counter()
    state = trainer.fit()
    wall = time.perf_counter() - begin
    if state.step != steps:
        raise RuntimeError(f"{variant}, seed {seed}: stopped at step {state.step}: {state.stop_reason}")
    durations = [later - earlier for earlier, later in zip(clock.stamps, clock.stamps[1:])]
    counters = torch._dynamo.utils.counters
    limit_hit = any("recompile limit" in key.lower() for key in counters["unimplemented"])
    return {
        "graphs": counters["stats"]["unique_graphs"],
        "limit_hit": limit_hit,
        "compile_s": compile_seconds(),
        "wall_s": wall,
        "early_step_ms": 1000 * statistics.median(durations[int(0.1 * steps) : int(0.45 * steps)]),
        "late_step_ms": 1000 * statistics.median(durations[int(0.8 * steps) :]),
        "val_loss": state.metrics["val_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started, origin = start(threads=1)
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for seed in range(args.repeats):
        for offset in range(len(VARIANTS)):  # rotating order: load from other jobs hits all variants alike
            variant = VARIANTS[(seed + offset) % len(VARIANTS)]
            result = run(variant, seed, args.steps, args.backend)
            results[variant].append(result)
            print(f"seed {seed} {variant}: {result}", flush=True)
    lines = [
        "# FreezeOut under torch.compile: recompiles and time",
        "",
        *report_header("compile_freezing.py", started, time.perf_counter() - origin, quick=False),
        f"- arguments: `--repeats {args.repeats} --steps {args.steps} --backend {args.backend}`; seeds "
        f"0..{args.repeats - 1} (model initialisation, data); mean ± std over the seeds",
        f"- model: MLP of {GROUPS} layer groups (9 × Linear({WIDTH}, {WIDTH}) + ReLU, Linear({WIDTH}, 10)), "
        f"SGD lr 0.05 momentum 0.9, FreezeOut(t0=0.5, cubic=False), {args.steps} steps of batch 128, "
        "evaluation every 5 epochs",
        "- GPU: not measured (no GPU available)",
        "",
        "| variant | graphs compiled | recompile limit hit | compile time (s) | fit wall time (s) | "
        "step, nothing frozen (ms) | step, last 20% (ms) | final loss (training batches) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        rows = results[variant]

        def column(key: str, rows: list[dict[str, Any]] = rows) -> list[float]:
            return [float(row[key]) for row in rows]

        graphs = sorted({row["graphs"] for row in rows})
        hits = sum(row["limit_hit"] for row in rows)
        lines.append(
            f"| {variant} | {', '.join(map(str, graphs))} | {hits}/{len(rows)} | "
            f"{format_mean_std(column('compile_s'), scale=1)} | "
            f"{format_mean_std(column('wall_s'), scale=1)} | "
            f"{format_mean_std(column('early_step_ms'), scale=1, digits=2)} | "
            f"{format_mean_std(column('late_step_ms'), scale=1, digits=2)} | "
            f"{format_mean_std(column('val_loss'), scale=1, digits=4)} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
