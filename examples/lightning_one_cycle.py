"""One-cycle LR and momentum in a Lightning run, with an EMA of the weights, on MNIST-1D (offline, CPU).

Lightning keeps its loop; cadence's ``CadenceCallback`` writes the LR and momentum of every optimizer update
(``trainer.global_step``) and runs cadence's EMA on the same clock.

    pip install 'cadence[lightning]'
    python examples/lightning_one_cycle.py --steps 400
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cadence.callbacks import EMA
from cadence.data import load
from cadence.integrations.lightning import CadenceCallback
from cadence.models import create
from cadence.schedules import one_cycle


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = create("cnn1d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        # A bare optimizer, no LR scheduler: CadenceCallback writes lr and momentum before every update.
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)


def accuracy(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(inputs).argmax(1) == targets).float().mean().item()


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps (default 400)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-lr", type=float, default=0.1)
    parser.add_argument("--out", default=None, help="where ema_model.pt goes (default: a temporary folder)")
    options = parser.parse_args(argv)

    torch.manual_seed(0)
    data = load("mnist1d")  # embedded, no download
    train = DataLoader(
        TensorDataset(data.train.inputs, data.train.targets),
        batch_size=options.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    schedule = one_cycle(options.max_lr, total_steps=options.steps)
    ema = EMA(decay=0.99)
    out = options.out or tempfile.mkdtemp(prefix="cadence-lightning-")
    cadence = CadenceCallback(
        {"lr": schedule, "momentum": schedule.momentum()}, callbacks=[ema], submodule="net", run_dir=out
    )
    module = Classifier()
    trainer = pl.Trainer(
        max_steps=options.steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[cadence],
    )
    trainer.fit(module, train)
    result = {
        "steps": float(trainer.global_step),
        "last_lr": cadence.values["lr"],
        "test_accuracy": accuracy(module.net, data.test.inputs, data.test.targets),
        "ema_test_accuracy": accuracy(ema.average.module, data.test.inputs, data.test.targets),
    }
    print(
        f"{trainer.global_step} steps: last lr {result['last_lr']:.4e} "
        f"(schedule: {schedule(options.steps - 1):.4e})  test accuracy {result['test_accuracy']:.3f}  "
        f"EMA {result['ema_test_accuracy']:.3f}  ({out})"
    )
    return result


if __name__ == "__main__":
    main()
