"""Two gloo ranks with per-rank batch B train exactly like one process with batch 2B."""

from __future__ import annotations

import pytest
import torch
from distributed_helpers import load_results, save_result
from torch import nn

from cadence import distributed

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

STEPS = 4
BATCH = 8  # per rank
WORLD = 2


def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(STEPS * BATCH * WORLD * 2, 6, generator=generator)
    targets = torch.randint(0, 3, (inputs.shape[0],), generator=generator)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    return model, inputs, targets


def train_single(
    batches: list[tuple[torch.Tensor, torch.Tensor]], accumulation: int = 1
) -> list[torch.Tensor]:
    """Reference: one process; each element of ``batches`` is one micro-batch."""
    model, _, _ = make_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for index, (inputs, targets) in enumerate(batches):
        loss = nn.functional.cross_entropy(model(inputs), targets) / accumulation
        loss.backward()
        if (index + 1) % accumulation == 0:
            optimizer.step()
            optimizer.zero_grad()
    return [parameter.detach().clone() for parameter in model.parameters()]


def rank_batches(rank: int, accumulation: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Shard by hand: global micro-batch i holds 2B examples; rank r takes its r-th half."""
    _, inputs, targets = make_problem()
    batches = []
    for index in range(STEPS * accumulation):
        start = index * BATCH * WORLD + rank * BATCH
        batches.append((inputs[start : start + BATCH], targets[start : start + BATCH]))
    return batches


def ddp_worker(rank: int, directory, accumulation: int) -> None:
    model, _, _ = make_problem()
    model = distributed.wrap_model(model)
    calls = {"count": 0}

    def counting_hook(state, bucket):
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        state["count"] += 1
        return allreduce_hook(None, bucket)

    model.register_comm_hook(calls, counting_hook)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    batches = rank_batches(rank, accumulation)
    for index, (inputs, targets) in enumerate(batches):
        final = (index + 1) % accumulation == 0
        with model.no_sync() if not final else torch.enable_grad():
            loss = nn.functional.cross_entropy(model(inputs), targets) / accumulation
            loss.backward()
        if final:
            optimizer.step()
            optimizer.zero_grad()
    parameters = [parameter.detach().clone() for parameter in distributed.unwrap_model(model).parameters()]
    save_result(directory, rank, {"parameters": parameters, "allreduce_calls": calls["count"]})


def global_batches(accumulation: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rank0, rank1 = rank_batches(0, accumulation), rank_batches(1, accumulation)
    return [(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(rank0, rank1)]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_two_ranks_match_one_process_with_double_batch(ranks, tmp_path, accumulation):
    ranks(ddp_worker, tmp_path, accumulation)
    results = load_results(tmp_path)
    reference = train_single(global_batches(accumulation), accumulation)
    for result in results:
        for got, expected in zip(result["parameters"], reference):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the parameters moved: the comparison is not trivially true
    initial = [parameter.detach() for parameter in make_problem()[0].parameters()]
    assert max((a - b).abs().max().item() for a, b in zip(reference, initial)) > 1e-2
    # one all-reduce per optimizer step (this model fits one bucket): no_sync skipped the other micro-batches
    assert [result["allreduce_calls"] for result in results] == [STEPS, STEPS]


def metrics_worker(rank: int, directory) -> None:
    # unequal shards: rank 0 holds 3 examples, rank 1 holds 5
    _, inputs, targets = make_problem()
    model, _, _ = make_problem()
    shard = slice(0, 3) if rank == 0 else slice(3, 8)
    with torch.no_grad():
        losses = nn.functional.cross_entropy(model(inputs[shard]), targets[shard], reduction="none")
    local = {"loss": losses.mean().item(), "count": float(len(losses))}
    summed = torch.tensor([losses.sum().item()], dtype=torch.float64)
    save_result(
        directory,
        rank,
        {
            "local": local,
            "mean": distributed.all_reduce_mean(local),
            "weighted": distributed.all_reduce_mean({"loss": local["loss"]}, weight=len(losses)),
            "sum": distributed.all_reduce_sum_tensor(summed).item(),
        },
    )


def test_metrics_are_reduced_over_ranks(ranks, tmp_path):
    ranks(metrics_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    model, inputs, targets = make_problem()
    with torch.no_grad():
        losses = nn.functional.cross_entropy(model(inputs[:8]), targets[:8], reduction="none")
    for result in (rank0, rank1):
        # plain mean of the ranks' local means
        assert result["mean"]["loss"] == pytest.approx((rank0["local"]["loss"] + rank1["local"]["loss"]) / 2)
        assert result["mean"]["count"] == 4.0
        # weighted by sample count: the mean over all 8 examples
        assert result["weighted"]["loss"] == pytest.approx(losses.mean().item(), rel=1e-6)
        assert result["sum"] == pytest.approx(losses.sum().item(), rel=1e-6)
    assert rank0["local"]["loss"] != pytest.approx(rank1["local"]["loss"])
