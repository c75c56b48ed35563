"""strategy="fsdp": FSDP2 on two gloo ranks trains like DDP and one process, and resumes from its shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed_helpers import StopAt, load_results, save_result
from torch import nn

from cadence import distributed
from cadence.data import TensorLoader
from cadence.errors import ConfigError
from cadence.train.callback import Callback
from cadence.train.checkpoint import CheckpointError, load_checkpoint
from cadence.train.trainer import Trainer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

BATCH = 8  # per rank
EXAMPLES = 64  # 4 global batches of 16 per epoch


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(EXAMPLES, 6, generator=generator)
    return inputs, (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()


class Recording(nn.Linear):
    """A Linear that records the dtype of the weight its forward computes with."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.compute_dtype = self.weight.dtype
        return super().forward(inputs)


def make_model() -> nn.Module:
    torch.manual_seed(1)
    # four units with parameters (LayerNorm's 16 values split evenly, Linear(6, 16)'s rows too)
    return nn.Sequential(Recording(6, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 16), nn.Linear(16, 3))


def full_parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter whole, on every rank (FSDP's DTensor shards gathered)."""
    gathered = []
    for parameter in distributed.unwrap_model(model).parameters():
        tensor = parameter.full_tensor() if hasattr(parameter, "full_tensor") else parameter
        gathered.append(tensor.detach().clone())
    return gathered


class GradientPresence(Callback):
    """Whether the first layer's (sharded) weight holds a gradient after each backward pass."""

    def __init__(self) -> None:
        self.seen: list[bool | None] = []

    def on_after_backward(self, state) -> None:
        self.seen.append(state.model[0].weight.grad is not None)

    def on_step_end(self, state) -> None:
        self.seen.append(None)  # marks the optimizer step


def build_trainer(
    rank: int, world_size: int, run_dir: Path | None, *, accumulation: int = 1, **options
) -> Trainer:
    inputs, targets = make_data()
    model = make_model()
    per_process = BATCH * 2 // world_size
    return Trainer(
        model,
        torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.01),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, per_process // accumulation, seed=5, rank=rank, world_size=world_size),
        epochs=2,
        accumulation_steps=accumulation,
        eval_data=TensorLoader(inputs, targets, 8, shuffle=False, rank=rank, world_size=world_size),
        grad_clip=0.5,
        device="cpu",
        run_dir=run_dir,
        progress=False,
        **options,
    )


def equivalence_worker(rank: int, directory: Path) -> None:
    results = {}
    for name, options in {
        "fsdp": {"strategy": "fsdp"},
        "fsdp_accumulated": {"strategy": "fsdp", "accumulation": 2},
        "ddp": {"strategy": "ddp"},
        "fsdp_bf16": {"strategy": "fsdp", "precision": "bf16"},
    }.items():
        trainer = build_trainer(rank, 2, directory / f"{name}-rank{rank}", **options)
        gradients = GradientPresence()
        trainer.callbacks.append(gradients)
        state = trainer.fit()
        first = trainer.model[0]
        results[name] = {
            "parameters": full_parameters(state.model),
            "metrics": dict(state.metrics),
            "sharded": distributed.is_sharded(state.model),
            "local_rows": first.weight.to_local().shape[0] if hasattr(first.weight, "to_local") else None,
            "stored_dtype": first.weight.dtype,
            "compute_dtype": first.compute_dtype,
            "gradient_after_micro_batch": gradients.seen,
        }
    # freezing layers mid-run is refused when the model is wrapped (FSDP shards what is trainable then)
    try:
        distributed.wrap_model(make_model(), strategy="fsdp", trainable_changes=True)
        results["freezing"] = None
    except ConfigError as error:
        results["freezing"] = str(error)
    save_result(directory, rank, results)


def test_fsdp_trains_like_ddp_and_one_process(ranks, tmp_path):
    ranks(equivalence_worker, tmp_path)
    results = load_results(tmp_path)
    single = build_trainer(0, 1, None)
    expected = full_parameters(single.fit().model)
    single_accumulated = build_trainer(0, 1, None, accumulation=2)
    expected_accumulated = full_parameters(single_accumulated.fit().model)
    for result in results:
        assert result["fsdp"]["sharded"]
        assert not result["ddp"]["sharded"]
        assert result["fsdp"]["local_rows"] == 8  # Linear(6, 16): 16 rows, half on each rank
        for name, reference in (
            ("fsdp", expected),
            ("ddp", expected),
            ("fsdp_accumulated", expected_accumulated),
        ):
            for got, want in zip(result[name]["parameters"], reference, strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        for got, want in zip(result["fsdp"]["parameters"], result["ddp"]["parameters"], strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        assert result["fsdp"]["metrics"] == pytest.approx(result["ddp"]["metrics"], abs=1e-5)
        # fp32: computed in fp32; bf16: FSDP gathers the parameters in bf16, keeps its shards in fp32
        # accumulation: FSDP reduce-scatters the gradient once per optimizer step, after its last micro-batch
        steps = result["fsdp_accumulated"]["gradient_after_micro_batch"]
        assert steps[:6] == [False, True, None, False, True, None]
        assert steps.count(True) == steps.count(None) == steps.count(False)
        assert result["fsdp"]["gradient_after_micro_batch"][:4] == [True, None, True, None]
        assert result["fsdp"]["compute_dtype"] == torch.float32
        assert result["fsdp_bf16"]["compute_dtype"] == torch.bfloat16
        assert result["fsdp_bf16"]["stored_dtype"] == torch.float32
        drift = max(
            (got - want).abs().max().item()
            for got, want in zip(result["fsdp_bf16"]["parameters"], expected, strict=True)
        )
        assert 0 < drift < 0.1  # bf16 rounding changes the result, a little
        assert "strategy = 'fsdp' does not support freezing" in result["freezing"]
        assert "use strategy = 'ddp'" in result["freezing"]
    # both ranks hold the same full weights
    for got0, got1 in zip(results[0]["fsdp"]["parameters"], results[1]["fsdp"]["parameters"], strict=True):
        assert torch.equal(got0, got1)


def resume_worker(rank: int, directory: Path) -> None:
    # rank 1 gets its own run directory for the uninterrupted run (only rank 0 writes to it),
    # and shares rank 0's for the resumed one: it must read the shards rank 0 committed
    whole = build_trainer(rank, 2, directory / f"whole-rank{rank}", strategy="fsdp", checkpoint_every_steps=2)
    whole_parameters = full_parameters(whole.fit().model)
    run_dir = directory / "resumed"
    if rank == 0:  # what a crash while writing the shards of step 4 would have left: replaced, not read
        stale = run_dir / "checkpoints" / "step-00000004.shards.tmp"
        stale.mkdir(parents=True)
        (stale / "__0_0.distcp").write_bytes(b"half-written")
    dist.barrier()
    build_trainer(rank, 2, run_dir, strategy="fsdp", checkpoint_every_steps=2, callbacks=[StopAt(3)]).fit()
    resumed = build_trainer(
        rank, 2, run_dir, strategy="fsdp", checkpoint_every_steps=2, callbacks=[StopAt(-1)]
    )
    state = resumed.fit(resume="latest")
    result = {
        "whole": whole_parameters,
        "resumed": full_parameters(state.model),
        "resumed_from": str(resumed.resumed_from),
        "step": state.step,
    }
    # the other strategy is refused with the reason, on every rank
    try:
        build_trainer(rank, 2, run_dir, strategy="ddp", callbacks=[StopAt(-1)]).fit(resume="latest")
        result["mismatch"] = None
    except CheckpointError as error:
        result["mismatch"] = str(error)
    # a changed shard makes its checkpoint fail verification before DCP reads anything: "latest" falls
    # back to the one before, and the run trains to the same end again
    dist.barrier()
    if rank == 0:
        shard = run_dir / "checkpoints" / "step-00000008.shards" / "__1_0.distcp"
        shard.write_bytes(shard.read_bytes()[:-1] + bytes([shard.read_bytes()[-1] ^ 1]))
    dist.barrier()
    notes: list[str] = []
    again = build_trainer(
        rank, 2, run_dir, strategy="fsdp", checkpoint_every_steps=2, callbacks=[StopAt(-1)], log=notes.append
    )
    result["again"] = full_parameters(again.fit(resume="latest").model)
    result["again_from"] = str(again.resumed_from)
    result["notes"] = notes
    # asked for by path, a checkpoint whose shards changed is refused
    corrupt = run_dir / "checkpoints" / "step-00000008.pt"
    if rank == 0:
        corrupt.with_suffix(".shards").joinpath("__0_0.distcp").write_bytes(b"changed")
    dist.barrier()
    try:
        build_trainer(rank, 2, run_dir, strategy="fsdp", callbacks=[StopAt(-1)]).fit(resume=corrupt)
        result["corrupt"] = None
    except CheckpointError as error:
        result["corrupt"] = str(error)
    save_result(directory, rank, result)


def test_fsdp_resume_from_shards_is_bitwise_equal(ranks, tmp_path):
    ranks(resume_worker, tmp_path)
    results = load_results(tmp_path)
    for result in results:
        assert result["step"] == 8
        assert result["resumed_from"].endswith("step-00000003.pt")
        for got, want in zip(result["resumed"], result["whole"], strict=True):
            assert torch.equal(got, want)
        assert "is sharded (strategy='fsdp'); resume it with strategy='fsdp'" in result["mismatch"]
        assert result["again_from"].endswith("step-00000006.pt")
        for got, want in zip(result["again"], result["whole"], strict=True):
            assert torch.equal(got, want)
        assert "is corrupt" in result["corrupt"]
        assert "__0_0.distcp" in result["corrupt"]
    assert any("step-00000008.pt" in note and "__1_0.distcp" in note for note in results[0]["notes"])
    checkpoints = tmp_path / "resumed" / "checkpoints"
    # kept: the newest two checkpoint files, each with its shards; nothing temporary left behind
    names = sorted(path.name for path in checkpoints.iterdir())
    assert names == ["step-00000006.pt", "step-00000006.shards", "step-00000008.pt", "step-00000008.shards"]
    assert sorted(path.name for path in (checkpoints / "step-00000008.shards").iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    saved = load_checkpoint(checkpoints / "step-00000006.pt")  # weights_only, checksums verified
    assert "model" not in saved
    assert "optimizer" not in saved
    assert sorted(saved["sharded"]["files"]) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert not (tmp_path / "whole-rank1").exists()

    # the uninterrupted run and the resumed one logged the same losses
    def losses(run_dir: Path) -> list[float]:
        lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [line["loss"] for line in lines if line["kind"] == "train"]

    assert losses(tmp_path / "resumed") == losses(tmp_path / "whole-rank0")
