"""Freezing and unfreezing during a DDP run (FreezeOut, gradual unfreezing) with trainable_changes=True."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result
from torch import nn

from cadence import distributed

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

STEPS = 6
BATCH = 8  # per rank


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(STEPS * 2 * BATCH, 5, generator=generator)
    targets = torch.randint(0, 3, (inputs.shape[0],), generator=generator)
    torch.manual_seed(1)
    return (
        nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)),
        inputs,
        targets,
    )


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)
        if not trainable:
            parameter.grad = None


def train(model: nn.Module, forward: nn.Module, batches) -> list[torch.Tensor]:
    """Layer 0 starts frozen and is unfrozen at step 2 (gradual unfreezing); layer 4 freezes at step 4."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    for step, (inputs, targets) in enumerate(batches):
        if step == 2:
            set_trainable(model[0], True)
        if step == 4:
            set_trainable(model[4], False)
        nn.functional.cross_entropy(forward(inputs), targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return [parameter.detach().clone() for parameter in model.parameters()]


def rank_batches(rank: int, world_size: int, inputs: torch.Tensor, targets: torch.Tensor):
    size = 2 * BATCH // world_size
    return [
        (inputs[start : start + size], targets[start : start + size])
        for start in range(rank * size, len(inputs), 2 * BATCH)
    ]


def worker(rank: int, directory: Path, trainable_changes: bool) -> None:
    model, inputs, targets = make_problem()
    set_trainable(model[0], False)  # frozen when wrapped
    forward = distributed.wrap_model(model, trainable_changes=trainable_changes)
    assert not any(parameter.requires_grad for parameter in model[0].parameters())  # flags restored
    save_result(directory, rank, train(model, forward, rank_batches(rank, 2, inputs, targets)))


def test_trainable_changes_keeps_ranks_identical_and_exact(ranks, tmp_path):
    ranks(worker, tmp_path, True)
    rank0, rank1 = load_results(tmp_path)
    model, inputs, targets = make_problem()
    set_trainable(model[0], False)
    expected = train(model, model, rank_batches(0, 1, inputs, targets))
    initial = list(make_problem()[0].parameters())
    assert not torch.equal(expected[0], initial[0].detach())  # layer 0 did train after unfreezing
    for got0, got1, reference in zip(rank0, rank1, expected):
        torch.testing.assert_close(got0, reference, rtol=0, atol=1e-6)
        torch.testing.assert_close(got1, reference, rtol=0, atol=1e-6)


def test_without_trainable_changes_unfrozen_layers_drift_apart(ranks, tmp_path):
    # documents the hazard wrap_model's docstring describes: layer 0 was frozen when wrapped, so after
    # unfreezing it its gradients are not averaged (the freeze at step 4 would raise without
    # find_unused_parameters, so this run stops before it)
    ranks(drift_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    assert not torch.allclose(rank0[0], rank1[0])  # layer 0: local gradients only
    torch.testing.assert_close(rank0[2], rank1[2])  # layer 2 was registered: averaged


def drift_worker(rank: int, directory: Path) -> None:
    model, inputs, targets = make_problem()
    set_trainable(model[0], False)
    forward = distributed.wrap_model(model)
    batches = rank_batches(rank, 2, inputs, targets)[:4]
    save_result(directory, rank, train(model, forward, batches))
