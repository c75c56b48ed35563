"""FreezeOut in the Trainer under two ranks: layers freeze during the run, ranks stay exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result
from torch import nn

from cadence import distributed
from cadence.callbacks.freezeout import FreezeOut, freezeout_param_groups
from cadence.data import TensorLoader
from cadence.train.trainer import Trainer
from cadence.transfer.param_groups import layer_groups

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def fit(rank: int, world_size: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    groups = layer_groups(model, n_groups=3)
    trainer = Trainer(
        model,
        torch.optim.SGD(freezeout_param_groups(groups), lr=0.1, momentum=0.9),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, 16 // world_size, seed=0, rank=rank, world_size=world_size),
        epochs=2,
        schedules={"lr": 0.1},
        callbacks=[FreezeOut(t0=0.3, cubic=False, groups=groups)],
        device="cpu",
        progress=False,
    )
    trainer.fit()
    return [parameter.detach().clone() for parameter in model.parameters()]


def worker(rank: int, directory: Path) -> None:
    save_result(directory, rank, fit(rank, distributed.get_world_size()))


def test_freezeout_on_two_ranks_matches_one_process(ranks, tmp_path):
    ranks(worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    expected = fit(0, 1)
    for got0, got1, reference in zip(rank0, rank1, expected):
        torch.testing.assert_close(got0, reference, rtol=0, atol=1e-6)
        torch.testing.assert_close(got1, reference, rtol=0, atol=1e-6)
