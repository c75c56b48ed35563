"""Data parallelism and the learning rate: does the default LR scaling keep the accuracy of one process?

    python benchmarks/ddp_lr_scaling.py [--seeds 3] [--epochs 30] [--out FILE.md]

Config ``configs/mnist1d_cnn_one_cycle.toml`` (MNIST-1D CNN, one-cycle, per-process batch B = 100), run with
``cadence train`` for each seed and each setting:

- ``1 process, batch B``: the config as tuned;
- ``2 processes, global 2B, ...``: ``--nproc 2``, so the global batch doubles and each epoch has half the
  optimizer updates. Each row names its rule explicitly (the rows do not depend on the default): linear
  (x2) with Goyal et al.'s warmup (2017; 5 epochs, capped at 10 % of the run: 60 steps at 30 epochs, given
  as ``warmup_steps``), linear without warmup, sqrt (x1.41; Krizhevsky 2014) with and without that warmup,
  and ``lr_scaling = "none"``.
  The config's one-cycle schedule already starts at ``max_lr / 25`` and rises over its first 25 %, so a
  warmup laid over it warms twice;
- ``2 processes, global B``: per-process batch B/2 with ``base_batch_size = B``: the one-process run's
  global batch, so nothing is scaled (the same updates as one process, up to float rounding);
- ``2 processes, global 2B, ..., 2x epochs``: as many optimizer steps as one process at B (how much of the
  gap is the halved number of updates).

Every process uses one thread (``OMP_NUM_THREADS=1``). The table reports the final test accuracy
(mean ± sample std over seeds) and the mean wall time of a run (process start-up included). Results go to
``benchmarks/results/ddp_lr_scaling.md`` (with the per-run numbers in ``ddp_lr_scaling.json``).
``--epochs`` shortens every run (the schedule and the warmup are derived from the shortened run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, format_mean_std, machine, mean_std, start

from cadence.tracking.stats import welch_t_test

CONFIG = "configs/mnist1d_cnn_one_cycle.toml"
#: (name, processes, --set overrides, epochs as a multiple of the config's)
LINEAR, SQRT, NONE = (f'distributed.lr_scaling="{rule}"' for rule in ("linear", "sqrt", "none"))
NO_WARMUP = "distributed.warmup_steps=0"
#: Goyal's warmup, min(5 epochs, 10 % of the run), given explicitly so that the row keeps its meaning
#: whatever warmup the default derives.
GOYAL_WARMUP = "goyal-warmup"
TRAIN_EXAMPLES = 4000  # MNIST-1D's training set
PER_PROCESS_BATCH = 100
SETTINGS = [
    ("1 process, batch B = 100", 1, [], 1),
    ("2 processes, global 2B, linear x2, Goyal warmup", 2, [LINEAR, GOYAL_WARMUP], 1),
    ("2 processes, global 2B, linear x2, no warmup", 2, [LINEAR, NO_WARMUP], 1),
    ("2 processes, global 2B, sqrt x1.41, Goyal warmup", 2, [SQRT, GOYAL_WARMUP], 1),
    ("2 processes, global 2B, sqrt x1.41, no warmup", 2, [SQRT, NO_WARMUP], 1),
    ('2 processes, global 2B, lr_scaling = "none"', 2, [NONE], 1),
    (
        "2 processes, global B (50 each, base_batch_size = 100)",
        2,
        ["train.batch_size=50", "distributed.base_batch_size=100"],
        1,
    ),
    ("2 processes, global 2B, linear x2, Goyal warmup, 2x epochs", 2, [LINEAR, GOYAL_WARMUP], 2),
    ("2 processes, global 2B, linear x2, no warmup, 2x epochs", 2, [LINEAR, NO_WARMUP], 2),
]
CONFIG_EPOCHS = 30


def train(nproc: int, seed: int, epochs: int, overrides: list[str], run_dir: Path) -> dict:
    """One ``cadence train`` run; returns its final accuracy, wall time and the LR scaling line."""
    command = [sys.executable, "-m", "cadence", "train", CONFIG, "--run-dir", str(run_dir)]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    if GOYAL_WARMUP in overrides:
        steps_per_epoch = TRAIN_EXAMPLES // (nproc * PER_PROCESS_BATCH)
        warmup = min(5 * steps_per_epoch, round(0.1 * steps_per_epoch * epochs))
        overrides = [f"distributed.warmup_steps={warmup}" if o == GOYAL_WARMUP else o for o in overrides]
    settings = [f"train.seed={seed}", "train.progress=false", f"train.epochs={epochs}", *overrides]
    for setting in settings:
        command += ["--set", setting]
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    began = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    plan = [line.split("lr scaling:", 1)[1] for line in result.stdout.splitlines() if "lr scaling:" in line]
    return {
        "accuracy": summary["final"]["val_accuracy"],
        "steps": summary["steps"],
        "wall_s": wall,
        "lr_scaling": f"lr scaling:{plan[0]}"
        if plan
        else "(none printed: the global batch is the base batch)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="shorten every run (default: config's 30)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ddp_lr_scaling.md")
    args = parser.parse_args()
    started, clock = start()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.seeds):  # interleaved: a burst of load from other jobs hits every setting
            for index, (name, nproc, overrides, factor) in enumerate(SETTINGS):
                epochs = factor * (args.epochs or CONFIG_EPOCHS)
                run = train(nproc, seed, epochs, overrides, Path(scratch) / f"{index}-{seed}")
                runs.append({"setting": name, "nproc": nproc, "seed": seed, "epochs": epochs, **run})
                print(
                    f"{name}, seed {seed}: {100 * run['accuracy']:.2f} % in {run['wall_s']:.0f} s", flush=True
                )
    wall = time.perf_counter() - clock
    command = "python benchmarks/ddp_lr_scaling.py" + " ".join(["", *sys.argv[1:]]).rstrip()
    lines = [
        "# Data parallelism and the learning rate (MNIST-1D CNN)",
        "",
        f"- date: {started} (UTC); machine: {machine()}; wall time {wall / 60:.1f} min",
        f"- command: `{command}`",
        f"- config: `{CONFIG}` ({args.epochs or CONFIG_EPOCHS} epochs unless noted, one-cycle max_lr 0.1, "
        f"per-process batch 100); seeds {', '.join(map(str, range(args.seeds)))}; one thread per process",
        "",
        "| setting | epochs | steps | final test accuracy % (mean ± std) | Welch p vs 1 process "
        "| wall time per run (s) |",
        "|---|---|---|---|---|---|",
    ]
    reference = [run["accuracy"] for run in runs if run["setting"] == SETTINGS[0][0]]
    for index, (name, *_) in enumerate(SETTINGS):
        chosen = [run for run in runs if run["setting"] == name]
        seconds, _ = mean_std([run["wall_s"] for run in chosen])
        values = [run["accuracy"] for run in chosen]
        accuracy = format_mean_std(values)
        p_value = "" if index == 0 or len(values) < 2 else f"{welch_t_test(values, reference).p_value:.3f}"
        lines.append(
            f"| {name} | {chosen[0]['epochs']} | {chosen[0]['steps']} | {accuracy} | {p_value} "
            f"| {seconds:.0f} |"
        )
    lines += ["", "LR scaling printed by each setting (seed 0):", ""]
    for name, *_ in SETTINGS:
        first = next(run for run in runs if run["setting"] == name)
        lines.append(f"- {name}: `{first['lr_scaling']}`")
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "runs": runs}, indent=1) + "\n")
    print(report)


if __name__ == "__main__":
    main()
