"""The Trainer and TensorLoader under two gloo ranks: same result as one process with the global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result
from torch import nn

from cadence import distributed
from cadence.data import TensorLoader
from cadence.errors import ConfigError
from cadence.train.trainer import Trainer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

BATCH = 8  # per rank
EXAMPLES = 64  # 4 global batches of 16 per epoch


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(EXAMPLES, 6, generator=generator)
    return inputs, (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def parameters_of(model: nn.Module) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in distributed.unwrap_model(model).parameters()]


def loader_worker(rank: int, directory: Path) -> None:
    """Hand-written loop: DDP + TensorLoader shards, 2 epochs."""
    inputs, targets = make_data()
    model = distributed.wrap_model(make_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    loader = TensorLoader(inputs, targets, BATCH, seed=3, rank=rank, world_size=distributed.get_world_size())
    seen = []
    for epoch in range(2):
        for batch_inputs, batch_targets in loader.batches(epoch):
            seen.append(batch_inputs)
            loss = nn.functional.cross_entropy(model(batch_inputs), batch_targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    save_result(directory, rank, {"parameters": parameters_of(model), "seen": seen})


def test_hand_loop_with_tensor_loader_shards(ranks, tmp_path):
    ranks(loader_worker, tmp_path)
    results = load_results(tmp_path)
    # shards are disjoint and together cover the epoch
    for batch0, batch1 in zip(results[0]["seen"], results[1]["seen"]):
        assert not any(torch.equal(row0, row1) for row0 in batch0 for row1 in batch1)
    first_epoch = torch.cat([torch.cat(result["seen"][:4]) for result in results])
    assert sorted(map(tuple, first_epoch.tolist())) == sorted(map(tuple, make_data()[0].tolist()))
    # reference: one process, global batch 2B, same seed
    inputs, targets = make_data()
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    loader = TensorLoader(inputs, targets, 2 * BATCH, seed=3)
    for epoch in range(2):
        for batch_inputs, batch_targets in loader.batches(epoch):
            nn.functional.cross_entropy(model(batch_inputs), batch_targets).backward()
            optimizer.step()
            optimizer.zero_grad()
    for result in results:
        for got, expected in zip(result["parameters"], parameters_of(model)):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def build_trainer(rank: int, world_size: int, run_dir: Path | None, accumulation: int, **options) -> Trainer:
    inputs, targets = make_data()
    per_process = BATCH * 2 // world_size
    model = make_model()
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, per_process // accumulation, seed=5, rank=rank, world_size=world_size),
        epochs=2,
        accumulation_steps=accumulation,
        eval_data=TensorLoader(inputs, targets, 6, shuffle=False, rank=rank, world_size=world_size),
        device="cpu",
        run_dir=run_dir,
        progress=False,
        **options,
    )


def trainer_worker(rank: int, directory: Path, accumulation: int) -> None:
    # rank 1 gets its own directory: anything written there would be a rank-1 artifact
    run_dir = directory / ("run" if rank == 0 else "rank1-run")
    trainer = build_trainer(rank, distributed.get_world_size(), run_dir, accumulation)
    state = trainer.fit()
    local = trainer.evaluate(TensorLoader(*make_data(), 6, shuffle=False, rank=rank, world_size=2))
    save_result(
        directory,
        rank,
        {"parameters": parameters_of(state.model), "metrics": dict(state.metrics), "evaluate": local},
    )


def read_train_losses(run_dir: Path) -> list[float]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if line["kind"] == "train"]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_trainer_on_two_ranks_matches_one_process(ranks, tmp_path, accumulation):
    ranks(trainer_worker, tmp_path, accumulation)
    results = load_results(tmp_path)
    single = build_trainer(0, 1, tmp_path / "single", accumulation)
    state = single.fit()
    for result in results:
        for got, expected in zip(result["parameters"], parameters_of(state.model)):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # only rank 0 wrote, and it wrote each record once
    assert not (tmp_path / "rank1-run").exists()
    run_dir = tmp_path / "run"
    assert sorted(path.name for path in run_dir.iterdir()) == sorted(
        path.name for path in (tmp_path / "single").iterdir()
    )
    assert json.loads((run_dir / "meta.json").read_text())["world_size"] == 2
    # logged losses are reduced over ranks: equal to the single process's global-batch losses
    losses, expected_losses = read_train_losses(run_dir), read_train_losses(tmp_path / "single")
    assert len(losses) == 8 == len(expected_losses)
    assert losses == pytest.approx(expected_losses, abs=1e-6)
    # evaluation of sharded data is averaged by sample count: equal to the whole-data evaluation
    for result in results:
        assert result["metrics"] == pytest.approx(state.metrics, abs=1e-6)
        assert result["evaluate"] == pytest.approx(single.evaluate(TensorLoader(*make_data(), 6)), abs=1e-6)


def checkpoint_worker(rank: int, directory: Path) -> None:
    build_trainer(rank, 2, directory / "run", 1, checkpoint_every_epochs=1).fit()


def test_resume_with_another_world_size_is_refused(ranks, tmp_path):
    ranks(checkpoint_worker, tmp_path)
    assert list((tmp_path / "run" / "checkpoints").glob("step-*.pt"))
    trainer = build_trainer(0, 1, tmp_path / "run", 1, checkpoint_every_epochs=1)
    with pytest.raises(ConfigError, match=r"world_size=2 .* world_size=1"):
        trainer.fit(resume="latest")


def test_check_world_size_message():
    distributed.check_world_size(None)  # older checkpoints without the field are accepted
    distributed.check_world_size(1)
    with pytest.raises(ConfigError, match=r"world_size=4 but this run has world_size=2.*--nproc 4"):
        distributed.check_world_size(4, current=2)


def dataloader_worker(rank: int, directory: Path) -> None:
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    inputs, targets = make_data()
    plain = DataLoader(TensorDataset(inputs, targets), batch_size=BATCH, shuffle=True)
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.3),
        nn.functional.cross_entropy,
        plain,  # the Trainer gives it a distributed sampler itself
        epochs=2,
        device="cpu",
        progress=False,
    )
    trainer.fit()
    loader = trainer.train_data
    assert isinstance(loader.sampler, DistributedSampler)
    assert distributed.shard_dataloader(loader) is loader
    epochs = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        epochs.append(torch.cat([batch_inputs for batch_inputs, _ in loader]))
    save_result(
        directory, rank, {"epochs": epochs, "parameters": parameters_of(model), "length": len(loader)}
    )


def test_dataloader_gets_a_distributed_sampler(ranks, tmp_path):
    ranks(dataloader_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    assert rank0["length"] == rank1["length"] == EXAMPLES // (2 * BATCH)
    everything = sorted(map(tuple, make_data()[0].tolist()))
    for epoch in range(2):
        shards = [rank0["epochs"][epoch], rank1["epochs"][epoch]]
        assert sorted(map(tuple, torch.cat(shards).tolist())) == everything  # disjoint and complete
    assert not torch.equal(rank0["epochs"][0], rank0["epochs"][1])  # reshuffled per epoch
    for got0, got1 in zip(rank0["parameters"], rank1["parameters"]):
        torch.testing.assert_close(got0, got1, rtol=0, atol=1e-6)
