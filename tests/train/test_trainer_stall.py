"""A run whose loss does not fall ends "stalled" with the likely cause, not "completed"."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cadence.train.stall import stall_message, update_trend
from cadence.train.trainer import Trainer
from tests.train.trainer_helpers import as_list, make_model


def learnable(samples: int = 96):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(samples, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()
    return as_list(inputs, targets, 16)


def fit(tmp_path, lr: float, precision: str = "fp32"):
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        nn.functional.cross_entropy,
        learnable(),
        epochs=6,
        schedules={"lr": lr},
        eval_data=learnable(),
        run_dir=tmp_path,
        progress=False,
        precision=precision,
    )
    trainer.fit()
    return trainer, json.loads((tmp_path / "summary.json").read_text())


def test_a_run_that_does_not_learn_is_stalled_and_says_why(tmp_path):
    trainer, summary = fit(tmp_path / "zero", 0.0, precision="bf16")
    assert trainer.status == summary["status"] == "stalled"
    reason = summary["extra"]["stop_reason"]
    assert "the training loss did not fall" in reason
    assert "learning rate" in reason
    assert "precision='bf16'" in reason
    meta = json.loads((tmp_path / "zero" / "meta.json").read_text())
    assert meta["status"] == "stalled"


def test_a_run_that_learns_is_completed(tmp_path):
    trainer, summary = fit(tmp_path / "ok", 0.1)
    assert trainer.status == summary["status"] == "completed"
    assert "stop_reason" not in summary["extra"]


def test_trend_and_verdict_are_pure_functions():
    start = average = float("nan")
    for step, loss in enumerate([2.0] * 10 + [1.0] * 200):
        start, average = update_trend(start, average, step, loss, total_steps=210)
    assert start == pytest.approx(2.0)
    assert average == pytest.approx(1.0, abs=1e-3)
    common = {"steps": 210, "loss_start": 2.3, "num_classes": 10, "lr_peak": 0.5, "precision": "fp32"}
    assert stall_message(loss_average=2.3, metrics={}, **common) is not None
    chance = stall_message(loss_average=1.0, metrics={"val_accuracy": 0.11}, **common)
    assert chance is not None
    assert "at chance" in chance
    assert stall_message(loss_average=1.0, metrics={"val_accuracy": 0.9}, **common) is None
    assert stall_message(loss_average=2.3, metrics={}, **{**common, "steps": 5}) is None  # too short to judge
