"""Config runs on two gloo ranks: the default LR scaling when the global batch changes, and its opt-out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distributed_helpers import load_results, save_result

from cadence import distributed
from cadence.config import build_experiment, run_config
from cadence.config.parsing import apply_overrides, parse_config

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

CONFIG = """
[data]
name = "synthetic"
num_train = 256
num_test = 64
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[optimizer]
name = "sgd"
momentum = 0.9

[schedule]
name = "one_cycle"
max_lr = 0.1

[train]
epochs = 4
batch_size = 16
progress = "off"
device = "cpu"
"""


def config(*overrides: str) -> dict:
    return apply_overrides(parse_config(CONFIG), list(overrides))


def config_worker(rank: int, directory: Path, overrides: tuple[str, ...]) -> None:
    plan = build_experiment(config(*overrides)).lr_scaling
    lines: list[str] = []
    state = run_config(config(*overrides), log=lines.append)
    save_result(
        directory,
        rank,
        {
            "plan": None if plan is None else plan.to_dict(),
            "lines": lines,
            "parameters": [p.detach().clone() for p in distributed.unwrap_model(state.model).parameters()],
            "metrics": dict(state.metrics),
        },
    )


def test_doubled_global_batch_gets_linear_scaling_by_default(ranks, tmp_path):
    ranks(config_worker, tmp_path, ())
    rank0, rank1 = load_results(tmp_path)
    plan = rank0["plan"]
    assert (plan["rule"], plan["global_batch"], plan["base_batch_size"], plan["factor"]) == (
        "linear",
        32,
        16,
        2.0,
    )
    # one-cycle warms up itself (from max_lr / 25), so no second warmup is laid over it
    assert (plan["warmup_steps"], plan["warmup_source"]) == (0, "schedule")
    assert plan["scaled_values"] == {"max_lr": pytest.approx(0.2)}
    assert rank0["lines"] == [
        "lr scaling: linear, global batch 32 = 16 per device × 2 processes × 1 accumulation step; "
        "factor 2 (base batch 16); max_lr 0.1 -> 0.2; no added warmup (the schedule warms up itself)"
    ]
    assert rank1["lines"] == []  # printed by rank 0 only


def test_rule_none_keeps_the_lr_and_says_so(ranks, tmp_path):
    ranks(config_worker, tmp_path, ('distributed.lr_scaling="none"',))
    rank0, rank1 = load_results(tmp_path)
    assert (rank0["plan"]["rule"], rank0["plan"]["factor"], rank0["plan"]["warmup_steps"]) == ("none", 1.0, 0)
    assert rank0["lines"] == [
        "lr scaling: none, global batch 32 = 16 per device × 2 processes × 1 accumulation step; "
        "factor 1 (base batch 16); max_lr 0.1 -> 0.1; no warmup"
    ]
    assert rank1["lines"] == []


def test_two_ranks_at_the_config_global_batch_match_one_process(ranks, tmp_path):
    # the config is tuned at batch 32; two ranks of 16 keep that global batch: nothing to scale
    ranks(config_worker, tmp_path, ("train.batch_size=16", "distributed.base_batch_size=32"))
    results = load_results(tmp_path)
    lines: list[str] = []
    single = run_config(config("train.batch_size=32"), log=lines.append)
    assert lines == []
    assert build_experiment(config("train.batch_size=32")).lr_scaling is None
    expected = list(single.model.parameters())
    for result in results:
        assert result["plan"] is None
        assert result["lines"] == []
        for got, want in zip(result["parameters"], expected):
            torch.testing.assert_close(got, want.detach(), rtol=0, atol=1e-5)
        assert result["metrics"]["val_accuracy"] == single.metrics["val_accuracy"]
        assert result["metrics"]["val_loss"] == pytest.approx(single.metrics["val_loss"], abs=1e-5)


def test_one_process_at_the_config_batch_is_not_scaled():
    assert build_experiment(config()).lr_scaling is None
    plan = build_experiment(config('distributed.lr_scaling="linear"')).lr_scaling
    assert (plan.base_batch_size, plan.factor, plan.warmup_steps) == (
        16,
        1.0,
        0,
    )  # base = batch × accumulation
    plan = build_experiment(config("train.accumulation_steps=2")).lr_scaling
    assert plan is None  # 16 × 2 accumulation is the batch the config was tuned at


def test_build_trainer_prints_the_plan_when_fit_starts(capsys):
    from cadence.config import build_trainer

    build_trainer(config("distributed.base_batch_size=8", "train.epochs=1")).fit()
    printed = capsys.readouterr().out
    assert printed.count("lr scaling: linear, global batch 16 = 16 per device × 1 process") == 1
    assert "factor 2 (base batch 8); max_lr 0.1 -> 0.2; no added warmup (the schedule warms up" in printed


def test_a_schedule_without_its_own_warmup_gets_the_derived_one():
    # a cosine decay starts at its peak; 256 / 16 = 16 steps per epoch, 64 steps: min(80, 6.4) = 6
    cosine = config("distributed.base_batch_size=8")
    cosine["schedule"] = {"name": "cosine", "start": 0.1, "end": 0.0, "steps": 64}
    plan = build_experiment(cosine).lr_scaling
    assert (plan.factor, plan.warmup_steps, plan.warmup_source) == (2.0, 6, "derived")
