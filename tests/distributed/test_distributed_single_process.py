"""cadence.distributed in a single process: everything is rank 0 of 1 and works without torch.distributed."""

from __future__ import annotations

import io
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cadence import distributed
from cadence.errors import ConfigError


def test_single_process_defaults(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() is False
    assert (distributed.get_rank(), distributed.get_world_size(), distributed.get_local_rank()) == (0, 1, 0)
    assert not distributed.is_distributed()
    assert distributed.is_main_process()
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert distributed.default_device() == expected
    distributed.barrier()
    with distributed.main_process_first():
        pass
    assert distributed.broadcast_object({"lr": 0.1}) == {"lr": 0.1}


def test_wrap_and_unwrap_are_identity_without_a_process_group():
    model = nn.Linear(2, 2)
    assert distributed.wrap_model(model, "cpu", trainable_changes=True) is model
    assert distributed.unwrap_model(model) is model
    loader = DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)
    assert distributed.shard_dataloader(loader) is loader


def test_reductions_are_identity():
    values = {"loss": 1.5, "accuracy": 1}
    reduced = distributed.all_reduce_mean(values)
    assert reduced == {"loss": 1.5, "accuracy": 1.0}
    assert reduced is not values
    tensor = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum_tensor(tensor) is tensor
    assert tensor.tolist() == [1.0, 2.0]


def test_world_size_one_is_not_initialised(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_from_env() is False
    assert distributed.launched_by_torchrun()


def test_missing_launcher_environment_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ConfigError, match=r"MASTER_ADDR, MASTER_PORT are not set.*torchrun"):
        distributed.init_from_env()


def test_unknown_backend_is_refused(monkeypatch):
    for name, value in {
        "WORLD_SIZE": "2",
        "RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=r"backend='tcp'.*'gloo'.*'nccl'"):
        distributed.init_from_env("tcp")


def test_record_lr_scaling_prints_and_records(tmp_path):
    from cadence.train.trainer import Trainer

    plan = distributed.lr_scaling_plan(
        0.1, per_device_batch=8, world_size=1, base_batch_size=4, warmup_steps=2
    )
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    inputs, targets = torch.randn(16, 3), torch.randint(0, 2, (16,))
    stream = io.StringIO()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.functional.cross_entropy,
        [(inputs[:8], targets[:8]), (inputs[8:], targets[8:])],
        epochs=2,
        schedules={"lr": plan.apply(0.1)},
        callbacks=[distributed.RecordLRScaling(plan, stream=stream)],
        device="cpu",
        run_dir=tmp_path / "run",
        progress=False,
    )
    trainer.fit()
    assert stream.getvalue().strip() == plan.summary()
    assert "factor 2" in plan.summary()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["extra"]["lr_scaling"] == json.loads(json.dumps(plan.to_dict()))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["lr"] for record in records if record["kind"] == "train"] == pytest.approx(
        [0.1, 0.15, 0.2, 0.2]
    )
    quiet = distributed.RecordLRScaling(plan, print_summary=False, stream=stream)
    quiet.on_fit_start(trainer.state)
    assert stream.getvalue().strip() == plan.summary()  # nothing added


def test_changes_trainable_recognises_freezing_callbacks():
    from cadence.callbacks.freezeout import FreezeOut
    from cadence.callbacks.mixup import Mixup
    from cadence.train.callback import Callback

    class Custom(Callback):
        changes_trainable = True

    assert distributed.changes_trainable([FreezeOut()])
    assert distributed.changes_trainable([Custom()])
    assert not distributed.changes_trainable([Mixup()])
    assert not distributed.changes_trainable([])


def test_resume_restores_rank_0_rng_and_gives_other_ranks_their_own_stream():
    from cadence.train import checkpoint as checkpoints
    from cadence.train.setup import restore_rank_rng, seed_rank

    seed_rank(3, 0)
    saved = checkpoints.capture_rng_state()
    expected = torch.rand(4)
    restore_rank_rng(saved, 3, 0, 10)
    assert torch.equal(torch.rand(4), expected)  # rank 0 continues the saved stream
    draws = {}
    for rank in (1, 2):
        restore_rank_rng(saved, 3, rank, 10)
        draws[rank] = torch.rand(4)
        restore_rank_rng(saved, 3, rank, 10)
        assert torch.equal(torch.rand(4), draws[rank])  # reproducible
    assert not torch.equal(draws[1], expected)
    assert not torch.equal(draws[1], draws[2])
    seed_rank(3, 1)
    first = torch.rand(4)
    torch.manual_seed(4)
    assert torch.equal(torch.rand(4), first)  # rank r starts from seed + r
