"""LossReads: losses read in one transfer, logged in order, stopping at the first non-finite one."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.train.loss_reads import LossReads
from cadence.train.state import TrainState


def make_state(step: int) -> TrainState:
    model = nn.Linear(1, 1)
    state = TrainState(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), total_steps=10, steps_per_epoch=10
    )
    state.step = step
    return state


def record(step: int) -> dict:
    return {"kind": "train", "step": step, "epoch": step / 10, "lr": 0.1, "loss": math.nan, "time": 0.0}


def test_pending_losses_are_logged_in_order_until_the_first_non_finite_one():
    reads = LossReads()
    for step, loss in ((1, 2.0), (2, 1.5), (3, math.inf), (4, 1.0)):
        reads.add(record(step), torch.tensor(loss), None)
    logged: list[dict] = []
    state = make_state(4)
    value, non_finite = reads.read(state, logged.append)
    assert value is None
    assert [line["loss"] for line in logged] == [2.0, 1.5]
    assert (non_finite.value, non_finite.step, non_finite.lr) == (math.inf, 2, 0.1)
    assert state.last_loss == 1.5
    assert reads.pending == []


def test_the_current_loss_and_fp16_skips_are_read_with_the_rest():
    reads = LossReads()
    reads.add(record(1), torch.tensor(0.5), torch.tensor(False))  # fp16 skipped this update
    logged: list[dict] = []
    state = make_state(1)
    value, non_finite = reads.read(state, logged.append, current=torch.tensor(0.25))
    assert (value, non_finite) == (0.25, None)
    assert logged[0]["skipped"] is True
    assert state.skipped_steps == 1


def test_a_label_out_of_range_names_the_steps():
    reads = LossReads(num_classes=3)
    reads.add(record(1), torch.tensor(0.5), None)
    reads.label_errors.append(torch.tensor(True))
    with pytest.raises(
        ConfigError, match=r"labels must lie in \[0, 2\] for num_classes=3; a batch of steps 0 to 1"
    ):
        reads.read(make_state(1), lambda line: None)
