"""DDP correctness on two gloo ranks: per-rank randomness, torchrun without init, default shards, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result
from test_trainer_ddp import BATCH, EXAMPLES, build_trainer, make_data, make_model, parameters_of
from torch import nn

from cadence import distributed
from cadence.callbacks import Callback
from cadence.data import TensorLoader
from cadence.train import checkpoint as checkpoints
from cadence.train.trainer import Trainer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


class RecordDropoutMasks(Callback):
    """Draws a dropout mask from the global generator at every batch, as the model's dropout does."""

    def __init__(self) -> None:
        self.masks: list[torch.Tensor] = []

    def on_batch_start(self, state) -> None:
        self.masks.append(nn.functional.dropout(torch.ones(32), 0.5, training=True))


def dropout_worker(rank: int, directory: Path) -> None:
    inputs, targets = make_data()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 32), nn.Dropout(0.5), nn.Tanh(), nn.Linear(32, 3))
    initial = parameters_of(model)
    recorder = RecordDropoutMasks()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, BATCH, seed=5, rank=rank, world_size=2),
        epochs=1,
        device="cpu",
        progress=False,
        callbacks=[recorder],
        seed=7,
    )
    trainer.fit()
    save_result(
        directory,
        rank,
        {"masks": recorder.masks, "initial": initial, "final": parameters_of(trainer.model)},
    )


def test_each_rank_draws_its_own_dropout_masks(ranks, tmp_path):
    ranks(dropout_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    assert len(rank0["masks"]) == len(rank1["masks"]) == EXAMPLES // (2 * BATCH)
    assert not any(torch.equal(mask0, mask1) for mask0, mask1 in zip(rank0["masks"], rank1["masks"]))
    # rank 0 is seeded as a single process is: seed + 0
    torch.manual_seed(7)
    assert torch.equal(rank0["masks"][0], nn.functional.dropout(torch.ones(32), 0.5, training=True))
    # the weights start and stay identical on every rank
    for got0, got1 in zip(rank0["initial"] + rank0["final"], rank1["initial"] + rank1["final"]):
        torch.testing.assert_close(got0, got1, rtol=0, atol=0)


def torchrun_worker(rank: int, directory: Path) -> None:
    # torchrun's environment is set, but nobody called init_from_env: the Trainer joins the group itself
    assert not distributed.is_distributed()
    inputs, targets = make_data()
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, BATCH, seed=5, rank=rank, world_size=2),
        epochs=2,
        device="cpu",
        run_dir=directory / "run",  # the same directory on both ranks
        progress=False,
    )
    state = trainer.fit()
    save_result(directory, rank, {"world_size": state.world_size, "parameters": parameters_of(model)})


def test_trainer_under_torchrun_joins_the_process_group(ranks, tmp_path):
    ranks(torchrun_worker, tmp_path, init=False)
    results = load_results(tmp_path)
    assert [result["world_size"] for result in results] == [2, 2]
    assert json.loads((tmp_path / "run" / "meta.json").read_text())["world_size"] == 2
    records = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    train_steps = [json.loads(line)["step"] for line in records if json.loads(line)["kind"] == "train"]
    assert train_steps == list(range(1, 9))  # 64 examples / global batch 16 × 2 epochs, written once
    expected = parameters_of(build_trainer(0, 1, None, 1).fit().model)  # one process, global batch 16
    for result in results:
        for got, want in zip(result["parameters"], expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def default_shard_worker(rank: int, directory: Path) -> None:
    inputs, targets = make_data()
    sharded = TensorLoader(inputs, targets, BATCH, seed=3)  # no rank/world_size: follows the group
    whole = TensorLoader(inputs, targets, BATCH, seed=3, rank=0, world_size=1)  # explicit wins
    save_result(
        directory,
        rank,
        {
            "shard": (sharded.rank, sharded.world_size, len(sharded)),
            "whole": (whole.rank, whole.world_size, len(whole)),
            "epoch0": torch.cat([batch for batch, _ in sharded.batches(0)]),
        },
    )


def test_tensor_loader_shards_by_default_under_a_process_group(ranks, tmp_path):
    ranks(default_shard_worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    assert rank0["shard"] == (0, 2, EXAMPLES // (2 * BATCH))
    assert rank1["shard"] == (1, 2, EXAMPLES // (2 * BATCH))
    assert rank0["whole"] == rank1["whole"] == (0, 1, EXAMPLES // BATCH)
    # disjoint shards of one permutation that together cover the data
    served = torch.cat([rank0["epoch0"], rank1["epoch0"]])
    assert sorted(map(tuple, served.tolist())) == sorted(map(tuple, make_data()[0].tolist()))
    expected = TensorLoader(*make_data(), BATCH, seed=3, rank=1, world_size=2)
    assert torch.equal(rank1["epoch0"], torch.cat([batch for batch, _ in expected.batches(0)]))
    assert TensorLoader(*make_data(), BATCH).world_size == 1  # no group here: not sharded


def checkpoint_worker(rank: int, directory: Path) -> None:
    build_trainer(rank, 2, directory / "run", 1, checkpoint_every_epochs=1).fit()


def resume_worker(rank: int, directory: Path) -> None:
    # the ranks see different newest checkpoints (rank 1: a stale copy with a later step)
    run_dir = directory / ("run" if rank == 0 else "stale")
    state = build_trainer(rank, 2, run_dir, 1, checkpoint_every_epochs=1).fit(resume="latest")
    save_result(directory, rank, {"step": state.step, "parameters": parameters_of(state.model)})


def test_resume_latest_is_chosen_by_rank_0(ranks, tmp_path):
    ranks(checkpoint_worker, tmp_path)
    saved = tmp_path / "run" / "checkpoints"
    _step4, step8 = checkpoints.list_checkpoints(saved)
    final = checkpoints.load_checkpoint(step8)["model"]
    (tmp_path / "stale" / "checkpoints").mkdir(parents=True)
    shutil.copy(step8, tmp_path / "stale" / "checkpoints" / step8.name)
    step8.unlink()  # rank 0's newest is now step 4
    ranks(resume_worker, tmp_path)
    results = load_results(tmp_path)
    assert [result["step"] for result in results] == [8, 8]
    # both continued from step 4 and reached the uninterrupted run's weights
    for result in results:
        for got, want in zip(result["parameters"], final.values()):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def stuck_rank_worker(rank: int, directory: Path) -> None:
    """Rank 1 stops answering before the loss read at step 3; rank 0 must not wait 30 minutes for it."""
    import time

    from cadence.distributed import CollectiveTimeoutError
    from cadence.train.callback import Callback
    from cadence.train.trainer import Trainer

    class Stall(Callback):
        def on_step_end(self, state) -> None:
            if rank == 1 and state.step == 2:
                time.sleep(8)

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 6, generator=generator)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 2))
    started = time.monotonic()
    try:
        trainer = Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.functional.cross_entropy,
            TensorLoader(inputs, (inputs[:, 0] > 0).long(), 8),
            total_steps=4,
            callbacks=[Stall()],
            progress=False,
            log_every_n_steps=3,
            timeout_s=2,
        )
        trainer.fit()
        outcome = "finished"
    except CollectiveTimeoutError as error:
        outcome = str(error)
    except RuntimeError as error:  # the stuck rank, when it comes back to closed connections
        outcome = f"other: {error}"
    (directory / f"rank{rank}.txt").write_text(f"{time.monotonic() - started:.1f}\n{outcome}")


def test_a_stuck_rank_times_out_with_a_message_naming_it(ranks, tmp_path):
    ranks(stuck_rank_worker, tmp_path, init=False)  # the Trainer creates the group, with timeout_s=2
    elapsed, message = (tmp_path / "rank0.txt").read_text().split("\n", 1)
    assert "a collective at step 2 timed out on rank 0 after 2 s" in message  # its backward's all_reduce
    assert "rank(s) 1 did not arrive" in message
    assert "timeout_s" in message
    assert float(elapsed) < 8  # two timeouts of 2 s and the start, not the 1800 s default
