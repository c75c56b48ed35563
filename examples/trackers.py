"""One run, three trackers: an MLflow file store, TensorBoard event files and a logger of your own.

cadence writes its own records (``metrics.jsonl``, ``summary.json``) and hands every record to each logger;
nothing here needs a server or the network.

    pip install 'cadence[mlflow,tensorboard]'
    python examples/trackers.py --steps 200
    mlflow ui --backend-store-uri OUT/mlruns          # or: tensorboard --logdir OUT/run/tensorboard
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cadence.data import TensorLoader, load
from cadence.models import create
from cadence.schedules import one_cycle
from cadence.tracking.loggers import MLflowLogger, scalar_metrics
from cadence.train.trainer import Trainer


class BestAccuracy:
    """A logger of our own: keeps the best evaluation accuracy and the loss at every logged step."""

    name = "best-accuracy"

    def __init__(self) -> None:
        self.best = 0.0
        self.losses: dict[int, float] = {}
        self.status: str | None = None

    def log_hparams(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        scalars = scalar_metrics(metrics)
        if "train/loss" in scalars:
            self.losses[step] = scalars["train/loss"]
        self.best = max(self.best, scalars.get("eval/val_accuracy", 0.0))

    def finish(self, status: str) -> None:
        self.status = status


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="folder for the run and the MLflow store")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="cadence-trackers-"))
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks before writing a file store
    torch.manual_seed(0)
    data = load("mnist1d")
    model = create("cnn1d")
    mine = BestAccuracy()
    mlflow = MLflowLogger(tracking_uri=(out / "mlruns").resolve().as_uri(), experiment="examples")
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True),
        F.cross_entropy,
        TensorLoader(data.train.inputs, data.train.targets, 100, seed=0),
        total_steps=args.steps,
        schedules={"lr": one_cycle(0.1, total_steps=args.steps)},
        eval_data=TensorLoader(data.test.inputs, data.test.targets, 500, shuffle=False),
        loggers=[mlflow, "tensorboard", mine],
        run_dir=out / "run",
        progress=False,
    )
    state = trainer.fit()
    print(f"{state.step} steps, best test accuracy {mine.best:.3f}; MLflow store: {out / 'mlruns'}")
    return {"out": out, "steps": state.step, "logger": mine, "run_dir": out / "run"}


if __name__ == "__main__":
    main()
