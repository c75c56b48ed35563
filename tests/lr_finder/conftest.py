"""Small models and data shared by the LR finder tests (CPU, a few milliseconds per step)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn


def make_batches(
    count: int = 8, batch_size: int = 16, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count * batch_size, 6, generator=generator)
    targets = (inputs[:, :3].sum(1) > 0).long() + (inputs[:, 3] > 0.5).long()
    return [
        (inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(targets), batch_size)
    ]


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every LR finder test on one thread (the shared ``one_thread`` fixture of tests/conftest.py)."""


@pytest.fixture
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return make_batches()


@pytest.fixture
def model() -> nn.Module:
    return make_model()


@pytest.fixture
def optimizer(model: nn.Module, batches) -> torch.optim.Optimizer:
    """SGD with momentum that has already taken a step, so it has momentum buffers to restore."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    inputs, targets = batches[0]
    nn.functional.cross_entropy(model(inputs), targets).backward()
    optimizer.step()
    return optimizer


def draw_random_numbers() -> tuple:
    """Numbers drawn from every global generator: equal draws mean equal RNG states."""
    return (torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)])
