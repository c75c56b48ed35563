"""Test accuracy of the shipped config ``configs/mnist1d_cnn_one_cycle.toml`` over seeds.

Checks that the config reproduces the MNIST-1D CNN figure of Greydanus & Kobak (94% test accuracy) with a
30-epoch one-cycle run. Command (from the repository root):

    python benchmarks/config_mnist1d_one_cycle.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
from pathlib import Path

import torch

from cadence.config import load_config, run_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mnist1d_cnn_one_cycle.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    default_output = Path(__file__).parent / "results" / "config_mnist1d.md"
    parser.add_argument("--output", type=Path, default=default_output)
    args = parser.parse_args()
    torch.set_num_threads(1)
    accuracies = []
    for seed in args.seeds:
        config = load_config(CONFIG, [f"train.seed={seed}", "train.progress=off"])
        with tempfile.TemporaryDirectory() as run_dir:
            run_config(config, run_dir)
            summary = json.loads((Path(run_dir) / "summary.json").read_text())
        accuracies.append(summary["final"]["val_accuracy"])
        print(f"seed {seed}: test accuracy {accuracies[-1]:.4f}")
    mean = statistics.mean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    seeds = " ".join(map(str, args.seeds))
    lines = [
        "# MNIST-1D CNN with the shipped one-cycle config",
        "",
        f"- date: {datetime.date.today().isoformat()}; machine: 2-core CPU, no GPU (shared, 1 thread)",
        f"- command: `python benchmarks/config_mnist1d_one_cycle.py --seeds {seeds}`",
        "- config: `configs/mnist1d_cnn_one_cycle.toml` (cnn1d, SGD + Nesterov, one-cycle LR 0.1 and "
        "momentum,",
        "  30 epochs, batch 100, full 4000/1000 split)",
        "- reference: Greydanus & Kobak report 94% test accuracy for this CNN",
        "",
        "| seed | test accuracy |",
        "|---|---|",
        *(f"| {seed} | {accuracy:.4f} |" for seed, accuracy in zip(args.seeds, accuracies)),
        "",
        f"**mean ± std over {len(accuracies)} seeds: {mean:.4f} ± {std:.4f}**",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print(f"mean ± std: {mean:.4f} ± {std:.4f}; written to {args.output}")


if __name__ == "__main__":
    main()
