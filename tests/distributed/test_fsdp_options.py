"""strategy = "ddp" | "fsdp": validation, and what FSDP refuses with a message saying what to do instead."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cadence import distributed
from cadence.callbacks import EMA, SWA
from cadence.config import schema
from cadence.data import TensorLoader
from cadence.errors import ConfigError
from cadence.schedules import one_cycle
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer


def make_trainer(**options) -> Trainer:
    torch.manual_seed(0)
    inputs = torch.randn(32, 4)
    targets = (inputs[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, 8, seed=0),
        epochs=1,
        device="cpu",
        progress=False,
        **options,
    )


@pytest.mark.parametrize("value", ["zero3", "FSDP", "", None, 1])
def test_a_bad_strategy_names_the_field_and_the_allowed_values(value):
    with pytest.raises(ConfigError, match=r"strategy = .*: expected one of 'ddp', 'fsdp'"):
        make_trainer(strategy=value)
    with pytest.raises(ConfigError, match=r"strategy = .*: expected one of 'ddp', 'fsdp'"):
        distributed.wrap_model(nn.Linear(2, 2), strategy=value)


def test_the_config_key_is_validated_and_reaches_the_trainer():
    from cadence.config import build_trainer, validate_config
    from tests.config.test_config import tiny

    assert schema.STRATEGIES == distributed.STRATEGIES
    with pytest.raises(ConfigError, match=r'distributed.strategy = "zero": expected one of "ddp", "fsdp"'):
        validate_config(tiny('distributed.strategy="zero"'))
    assert build_trainer(tiny('distributed.strategy="fsdp"')).strategy == "fsdp"
    assert build_trainer(tiny()).strategy == "ddp"


def test_fsdp_in_one_process_trains_exactly_like_ddp():
    # nothing to shard in a single process: the model is left as it is, as under DDP
    results = []
    for strategy in ("ddp", "fsdp"):
        trainer = make_trainer(strategy=strategy)
        trainer.fit()
        assert not distributed.is_sharded(trainer.model)
        results.append([parameter.detach().clone() for parameter in trainer.model.parameters()])
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)


def test_an_auto_learning_rate_and_weight_averaging_are_accepted():
    # two ranks: tests/distributed/test_fsdp_averaging_and_race.py
    for options in (
        {"schedules": {"lr": one_cycle(max_lr="auto", total_steps=4)}},
        {"callbacks": [SWA(start=0.5)]},
        {"callbacks": [EMA(decay=0.9)]},
    ):
        assert make_trainer(strategy="fsdp", **options).strategy == "fsdp"


def test_a_callback_that_keeps_full_weights_is_refused_with_what_to_do():
    class KeepsACopy(Callback):
        keeps_full_weights = True

    with pytest.raises(
        ConfigError, match=r"KeepsACopy with strategy='fsdp' is not supported yet.*strategy='ddp'"
    ):
        make_trainer(strategy="fsdp", callbacks=[KeepsACopy()])
    make_trainer(strategy="ddp", callbacks=[KeepsACopy()])  # accepted


def test_fp16_is_refused_and_bf16_accepted():
    with pytest.raises(ConfigError, match=r"precision='fp16' with strategy='fsdp'.*precision='bf16'"):
        make_trainer(strategy="fsdp", precision="fp16")
    assert make_trainer(strategy="fsdp", precision="bf16").strategy == "fsdp"
