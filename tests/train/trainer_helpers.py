"""Small models and data for the Trainer tests: everything in memory, a few milliseconds per step."""

from __future__ import annotations

import torch
from torch import nn


class PairLoader:
    """A loader with ``batches(epoch, start)``: the order is a pure function of (seed, epoch)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        self.inputs, self.targets, self.batch_size, self.seed = inputs, targets, batch_size, seed
        self.num_classes = int(targets.max()) + 1

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def batches(self, epoch: int, start: int = 0):
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.inputs), generator=generator)
        for index in range(start, len(self)):
            chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
            yield self.inputs[chosen], self.targets[chosen]


def make_data(samples: int = 48, features: int = 6, classes: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, features, generator=generator)
    targets = torch.randint(0, classes, (samples,), generator=generator)
    return inputs, targets


def make_model(features: int = 6, classes: int = 3, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes))


def as_list(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int):
    return [
        (inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(inputs), batch_size)
    ]


def checkpoint_dict(step: int = 1, **extra) -> dict:
    """A Trainer checkpoint of the current format built by hand as a plain dict, the way the Trainer wrote
    it before the typed record: every key the schema requires, plus ``extra`` (which may replace them)."""
    from cadence.train import checkpoint as checkpoints

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return {
        "format": checkpoints.CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "precision": {},
        "callbacks": [],
        "trainer": {
            "step": step,
            "epoch": 0,
            "batch_index": step,
            "skipped_steps": 0,
            "wall_time": 0.5,
            "last_loss": 1.0,
            "loss_start": 1.0,
            "loss_average": 1.0,
            "metrics": {},
            "best": {},
            "total_steps": 8,
            "world_size": 1,
            "metrics_lines": step,
            "schedules": {},
        },
        "rng": checkpoints.capture_rng_state(),
        "epoch_rng": None,
        **extra,
    }
