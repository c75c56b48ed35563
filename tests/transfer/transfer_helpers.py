"""Small models and loops shared by the transfer-learning tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OutOfOrder(nn.Module):
    """Children registered head first, but run stem -> blocks -> head; the embedding weight is tied."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.norm = nn.BatchNorm1d(8)
        self.stem = nn.Linear(4, 8)
        self.tied = nn.Linear(4, 8)
        self.tied.weight = self.stem.weight  # shared parameter: must appear once, in the first group
        self.unused = nn.Linear(2, 2)  # never runs: goes last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x)) + self.tied(x)
        x = self.norm(x)
        for block in self.blocks:
            x = torch.relu(block(x))
        return self.head(x)


def stack(seed: int = 0, width: int = 8) -> nn.Sequential:
    """Four groups when split per child: linear+bn, linear, linear, linear head."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width), nn.ReLU()),
        nn.Sequential(nn.Linear(width, width), nn.ReLU()),
        nn.Sequential(nn.Linear(width, width), nn.ReLU()),
        nn.Linear(width, 3),
    )


def data(samples: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 4, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()
    return inputs, targets


def loss_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs, targets) -> None:
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
