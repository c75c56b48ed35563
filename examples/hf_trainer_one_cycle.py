"""One-cycle LR in a Hugging Face Trainer run, with SWA over the last quarter, on MNIST-1D (offline, CPU).

The HF Trainer keeps its loop; cadence's ``CadenceTrainerCallback`` writes the LR and β1 of every optimizer
update (``state.global_step``) and runs cadence's SWA on the same clock. The model is a small local
``nn.Module`` returning ``{"loss", "logits"}``; nothing is downloaded.

    pip install 'cadence[transformers]'
    python examples/hf_trainer_one_cycle.py --steps 400
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainingArguments

from cadence.callbacks import SWA
from cadence.data import load
from cadence.integrations.huggingface import CadenceTrainerCallback
from cadence.models import create
from cadence.schedules import one_cycle


class Classifier(nn.Module):
    """What the HF Trainer expects: keyword inputs and a dict with the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.net = create("cnn1d")

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


class Signals(torch.utils.data.Dataset):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.inputs[index], "labels": self.targets[index]}


def accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(inputs).argmax(1) == targets).float().mean().item()


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps (default 400)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-lr", type=float, default=0.01, help="AdamW's peak LR (default 0.01)")
    parser.add_argument("--out", default=None, help="output_dir (default: a temporary folder)")
    options = parser.parse_args(argv)

    torch.manual_seed(0)
    data = load("mnist1d")  # embedded, no download
    model = Classifier()
    schedule = one_cycle(options.max_lr, total_steps=options.steps)
    swa = SWA(start=0.75)
    cadence = CadenceTrainerCallback({"lr": schedule, "momentum": schedule.momentum()}, callbacks=[swa])
    out = options.out or tempfile.mkdtemp(prefix="cadence-hf-")
    args = TrainingArguments(
        output_dir=out,
        max_steps=options.steps,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.max_lr,
        lr_scheduler_type="constant",  # overwritten before every update by the callback anyway
        weight_decay=5e-4,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        seed=0,
    )
    train = Signals(data.train.inputs, data.train.targets)
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[cadence])
    trainer.train()
    result = {
        "steps": float(trainer.state.global_step),
        "last_lr": cadence.values["lr"],
        "test_accuracy": accuracy(model.net, data.test.inputs, data.test.targets),
        "swa_test_accuracy": accuracy(swa.average.module.net, data.test.inputs, data.test.targets),
    }
    print(
        f"{trainer.state.global_step} steps: last lr {result['last_lr']:.4e} "
        f"(schedule: {schedule(options.steps - 1):.4e})  test accuracy {result['test_accuracy']:.3f}  "
        f"SWA {result['swa_test_accuracy']:.3f}  ({out})"
    )
    return result


if __name__ == "__main__":
    main()
