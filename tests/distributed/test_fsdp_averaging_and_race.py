"""strategy="fsdp" with SWA, EMA, snapshots and max_lr="auto" on two gloo ranks, without copies of the module.

Each rank averages its own shards, the averaged shards go into the sharded checkpoint (resume is bitwise),
the files are gathered whole onto rank 0 and equal DDP's; the LR race trains the sharded model in place from
a snapshot of its shards and decides as DDP does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed_helpers import StopAt, load_results, save_result
from torch import nn

from cadence.averaging import EMAWeights
from cadence.callbacks import EMA, SWA, SnapshotEnsemble
from cadence.data import TensorLoader
from cadence.errors import ConfigError
from cadence.schedules import one_cycle
from cadence.train.trainer import Trainer
from cadence.weights import local_tensor

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

BATCH = 8  # per rank
EXAMPLES = 64
FILES = ("swa_model.pt", "ema_model.pt", "snapshots/snapshot-1.pt", "snapshots/snapshot-2.pt")


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(EXAMPLES, 6, generator=generator)
    return inputs, (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()


def make_model(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(1)
    middle = nn.BatchNorm1d(16) if batch_norm else nn.LayerNorm(16)
    return nn.Sequential(nn.Linear(6, 16), middle, nn.Tanh(), nn.Linear(16, 16), nn.Linear(16, 3))


def build(
    rank: int, run_dir: Path | None, strategy: str, *, batch_norm=False, auto=False, extra=()
) -> Trainer:
    inputs, targets = make_data()
    model = make_model(batch_norm)
    lr = one_cycle(max_lr="auto" if auto else 0.05, total_steps=8)
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, BATCH, seed=5, rank=rank, world_size=2),
        epochs=2,
        schedules={"lr": lr},
        eval_data=TensorLoader(inputs, targets, 8, shuffle=False, rank=rank, world_size=2),
        callbacks=[SWA(start=0.5), EMA(decay=0.8), SnapshotEnsemble(at_steps=[3, 7]), *extra],
        lr_selection={"candidates": 3, "budget": 1.0, "sweep_options": {"num_steps": 20, "end_lr": 10.0}},
        strategy=strategy,
        device="cpu",
        run_dir=run_dir,
        progress=False,
        checkpoint_every_steps=2,
    )


def saved_files(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {name: torch.load(run_dir / name, weights_only=True) for name in FILES}


def full(model: nn.Module) -> list[torch.Tensor]:
    return [p.full_tensor() if hasattr(p, "full_tensor") else p.detach().clone() for p in model.parameters()]


class NoModuleCopies:
    """Deep-copying any module raises while inside (the race must not copy a sharded model)."""

    def __enter__(self):
        def refuse(module, memo):
            raise AssertionError(f"deep copy of a {type(module).__name__}")

        nn.Module.__deepcopy__ = refuse
        return self

    def __exit__(self, *exc) -> None:
        del nn.Module.__deepcopy__


def worker(rank: int, directory: Path) -> None:
    result: dict = {}
    # the same run under both strategies: the averaged and snapshot files gathered onto rank 0
    for strategy in ("fsdp", "ddp"):
        trainer = build(rank, directory / f"{strategy}-rank{rank}", strategy)
        state = trainer.fit()
        result[strategy] = {
            "metrics": {k: v for k, v in state.metrics.items() if k.startswith(("swa_", "ema_"))},
            "files": saved_files(directory / f"{strategy}-rank0") if rank == 0 else None,
        }
    # stopped at step 3 and resumed from the checkpoint of step 2: the averages continue exactly
    run_dir = directory / "resumed"
    build(rank, run_dir, "fsdp", extra=[StopAt(3)]).fit()
    build(rank, run_dir, "fsdp", extra=[StopAt(-1)]).fit(resume="latest")
    dist.barrier()
    result["resumed"] = saved_files(run_dir) if rank == 0 else None
    # SWA's batch-norm statistics are recomputed on the average, over every rank's batches
    build(rank, directory / f"bn-rank{rank}", "fsdp", batch_norm=True).fit()
    result["bn"] = saved_files(directory / "bn-rank0")["swa_model.pt"] if rank == 0 else None
    # max_lr="auto": the race trains the sharded model itself and leaves it as it was
    sharded = build(rank, None, "fsdp", auto=True)
    sharded._prepare_model()
    before = full(sharded.model)
    with NoModuleCopies():
        selection = sharded.select_lr()
    result["race"] = {
        "fsdp": selection.to_dict(),
        "untouched": all(torch.equal(a, b) for a, b in zip(before, full(sharded.model), strict=True)),
        "ddp": build(rank, None, "ddp", auto=True).select_lr().to_dict(),
    }
    # the plain-loop average of a sharded model holds this rank's shards, not a module
    average = EMAWeights(sharded.model)
    kept = average.sharded_state_dict(sharded.model)["parameters"].values()
    result["kept_values"] = sum(local_tensor(tensor).numel() for tensor in kept)
    result["model_values"] = sum(parameter.numel() for parameter in sharded.model.parameters())
    try:
        result["module"] = type(average.module).__name__
    except ConfigError as error:
        result["module"] = str(error)
    save_result(directory, rank, result)


def test_averages_snapshots_and_the_race_under_fsdp(ranks, tmp_path):
    ranks(worker, tmp_path)
    rank0, rank1 = load_results(tmp_path)
    fsdp, ddp = rank0["fsdp"]["files"], rank0["ddp"]["files"]
    for name in FILES:
        assert fsdp[name].keys() == ddp[name].keys()
        for key, tensor in ddp[name].items():
            assert fsdp[name][key].shape == tensor.shape, (name, key)  # whole tensors, not shards
            torch.testing.assert_close(fsdp[name][key], tensor, rtol=0, atol=1e-5, msg=f"{name} {key}")
    assert rank0["fsdp"]["metrics"] == rank1["fsdp"]["metrics"]
    assert set(rank0["fsdp"]["metrics"]) == {
        "swa_val_loss",
        "swa_val_accuracy",
        "ema_val_loss",
        "ema_val_accuracy",
    }
    assert rank0["fsdp"]["metrics"] == pytest.approx(rank0["ddp"]["metrics"], abs=1e-5)
    whole = fsdp
    for name in FILES:
        for key, tensor in whole[name].items():
            assert torch.equal(rank0["resumed"][name][key], tensor), (name, key)
    # the running mean is the mean over all 64 examples of the averaged first layer's outputs (32 per rank)
    bn = rank0["bn"]
    layer = nn.Linear(6, 16)
    layer.load_state_dict({"weight": bn["0.weight"], "bias": bn["0.bias"]})
    inputs, _ = make_data()
    with torch.no_grad():
        torch.testing.assert_close(bn["1.running_mean"], layer(inputs).mean(0), rtol=0, atol=1e-5)
    for rank in (rank0, rank1):
        race = rank["race"]
        assert race["untouched"]
        assert race["fsdp"]["value"] == pytest.approx(race["ddp"]["value"], rel=1e-4)
        fsdp_scores = [entry["score"] for entry in race["fsdp"]["entries"]]
        assert fsdp_scores == pytest.approx([entry["score"] for entry in race["ddp"]["entries"]], rel=1e-4)
    assert rank0["race"]["fsdp"]["value"] == rank1["race"]["fsdp"]["value"]
    # each rank keeps its own part of the average: together the model once, not once per rank
    assert rank0["kept_values"] + rank1["kept_values"] == rank0["model_values"]
    assert 0 < rank1["kept_values"] < rank0["model_values"]
    assert "holds this rank's shards" in rank0["module"]
    assert "with average.applied(model)" in rank0["module"]
