"""The LR race under two gloo ranks: one decision for all ranks, equal to one process at the global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result
from torch import nn

from cadence import distributed
from cadence.data import TensorLoader
from cadence.lr_finder import select_lr
from cadence.schedules import one_cycle

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

BATCH = 8  # per rank
STEPS = 60


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(160, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)), inputs, targets


def race(loader: TensorLoader):
    model, _, _ = make_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    selection = select_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        loader,
        {"lr": one_cycle(max_lr="auto", total_steps=STEPS)},
        total_steps=STEPS,
        candidates=3,
        val_fraction=0.2,
        sweep_options={"num_steps": 25, "end_lr": 10.0},
        trainer_options={"device": "cpu"},
    )
    return selection, [parameter.detach().clone() for parameter in model.parameters()]


def race_worker(rank: int, directory: Path) -> None:
    _, inputs, targets = make_problem()
    loader = TensorLoader(inputs, targets, BATCH, seed=2, rank=rank, world_size=distributed.get_world_size())
    selection, parameters = race(loader)
    save_result(directory, rank, {"selection": selection.to_dict(), "parameters": parameters})


def test_race_on_two_ranks_decides_once_like_one_process(ranks, tmp_path):
    ranks(race_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    assert rank0["selection"]["value"] == rank1["selection"]["value"]
    assert rank0["selection"]["entries"] == rank1["selection"]["entries"]
    model, inputs, targets = make_problem()
    for got, expected in zip(rank0["parameters"], model.parameters()):
        assert torch.equal(got, expected)  # the caller's model is untouched on every rank
    # the sweep's gradients and the candidates' validation results are averaged over ranks: the same as one
    # process with the global batch
    single, _ = race(TensorLoader(inputs, targets, 2 * BATCH, seed=2))
    assert rank0["selection"]["sweep"]["losses"] == pytest.approx(single.sweep.losses, rel=1e-5)
    scores = [entry["score"] for entry in rank0["selection"]["entries"]]
    assert scores == pytest.approx([entry.score for entry in single.entries], rel=1e-4)
    assert rank0["selection"]["value"] == pytest.approx(single.value, rel=1e-6)
