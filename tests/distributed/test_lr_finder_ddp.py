"""The LR finder under two gloo ranks: one LR sequence, losses averaged over ranks, state restored on both."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result
from torch import nn

from cadence import distributed
from cadence.data import TensorLoader
from cadence.lr_finder import find_lr

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

BATCH = 8  # per rank


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)), inputs, targets


def sweep(model: nn.Module, loader: TensorLoader) -> tuple[object, dict]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # one real step first, so there is optimizer state (momentum buffers) to restore
    inputs, targets = next(iter(loader.batches(99)))
    nn.functional.cross_entropy(model(inputs), targets).backward()
    optimizer.step()
    before = {
        "parameters": [parameter.detach().clone() for parameter in model.parameters()],
        "optimizer": {
            key: value["momentum_buffer"].clone() for key, value in optimizer.state_dict()["state"].items()
        },
        "lr": optimizer.param_groups[0]["lr"],
        "rng": torch.get_rng_state(),
    }
    result = find_lr(
        model, optimizer, nn.functional.cross_entropy, loader, num_steps=25, end_lr=10.0, progress=False
    )
    after = {
        "parameters": [parameter.detach().clone() for parameter in model.parameters()],
        "optimizer": {
            key: value["momentum_buffer"].clone() for key, value in optimizer.state_dict()["state"].items()
        },
        "lr": optimizer.param_groups[0]["lr"],
        "rng": torch.get_rng_state(),
    }
    return result, {"before": before, "after": after}


def finder_worker(rank: int, directory: Path) -> None:
    model, inputs, targets = make_problem()
    model = distributed.wrap_model(model)
    loader = TensorLoader(inputs, targets, BATCH, seed=2, rank=rank, world_size=distributed.get_world_size())
    result, states = sweep(model, loader)
    save_result(
        directory,
        rank,
        {"lrs": result.lrs, "losses": result.losses, "suggestion": result.suggestion, **states},
    )


def assert_restored(states: dict) -> None:
    before, after = states["before"], states["after"]
    for got, expected in zip(after["parameters"], before["parameters"]):
        assert torch.equal(got, expected)
    assert before["optimizer"].keys() == after["optimizer"].keys()
    for key in before["optimizer"]:
        assert torch.equal(after["optimizer"][key], before["optimizer"][key])
    assert after["lr"] == before["lr"]
    assert torch.equal(after["rng"], before["rng"])


def test_lr_finder_on_two_ranks(ranks, tmp_path):
    ranks(finder_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    assert_restored(rank0)
    assert_restored(rank1)
    # the same LR sequence and the same (averaged) losses on both ranks, so both stop at the same step
    assert rank0["lrs"] == rank1["lrs"]
    assert rank0["losses"] == rank1["losses"]
    assert rank0["suggestion"] == rank1["suggestion"]
    # averaged over ranks = the loss of one process with the global batch (2B, same data order)
    model, inputs, targets = make_problem()
    single, _ = sweep(model, TensorLoader(inputs, targets, 2 * BATCH, seed=2))
    assert rank0["lrs"] == pytest.approx(single.lrs, rel=1e-12)
    assert rank0["losses"] == pytest.approx(single.losses, rel=1e-6)  # float32 rounding as the loss grows
    assert rank0["suggestion"] == pytest.approx(single.suggestion, rel=1e-6)
