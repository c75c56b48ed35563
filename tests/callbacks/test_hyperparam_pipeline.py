"""One hyperparameter pipeline: FreezeOut + gradual unfreezing + SWA + a schedule in one run.

Per param group ``i`` at step ``s`` the LR is ``schedule(s) · lr_scale_i · freezeout_i(s) · unfreezing_i(s)``,
with SWA replacing the schedule from its start (docs/architecture.md). The values below are worked out by
hand from that formula; the run must apply exactly them, record them, answer them from ``hyperparams_at`` and
continue exactly after a resume.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cadence.callbacks.averaging import SWA
from cadence.callbacks.freezeout import FreezeOut
from cadence.callbacks.unfreezing import GradualUnfreezing
from cadence.data import TensorLoader
from cadence.hyperparams import HyperparamPipeline, hyperparams_at
from cadence.schedules import constant, cosine, linear
from cadence.train import checkpoint as checkpoints
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer
from cadence.transfer.param_groups import discriminative_lrs, layer_groups

TOTAL_STEPS = 16  # 64 samples, batches of 16: 4 steps per epoch


def model_for(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU()),
        nn.Sequential(nn.Linear(8, 8), nn.ReLU()),
        nn.Linear(8, 3),
    )


class Record(Callback):
    """Per step: every param group's LR and which layer groups train (after all other callbacks)."""

    def __init__(self, groups) -> None:
        self.groups = groups
        self.lrs: dict[int, list[float]] = {}
        self.trainable: dict[int, list[bool]] = {}

    def on_after_backward(self, state) -> None:
        self.lrs[state.step] = [group["lr"] for group in state.optimizer.param_groups]
        self.trainable[state.step] = [all(p.requires_grad for p in g.params) for g in self.groups]


def run(run_dir, *, resume=None):
    model = model_for()
    groups = layer_groups(model, n_groups=3)
    optimizer = torch.optim.SGD(discriminative_lrs(groups, factor=2.0), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 4, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()
    record = Record(groups)
    callbacks = [
        FreezeOut(t0=0.5, scale_lr=False, cubic=False, groups=groups),  # groups freeze at steps 8, 12, 16
        GradualUnfreezing(
            [{"at_step": 0, "groups": 2}, {"at_step": 4, "groups": "all"}], groups, train_bn=False
        ),
        SWA(start=12, lr=0.01),  # the LR is 0.01 from step 12 on
        record,
    ]
    trainer = Trainer(
        model, optimizer, F.cross_entropy, TensorLoader(inputs, targets, 16, seed=1), total_steps=TOTAL_STEPS,
        schedules={"lr": linear(0.2, 0.1, steps=10)}, callbacks=callbacks, run_dir=run_dir, seed=3,
        progress=False, checkpoint_every_steps=4, keep_checkpoints=10, device="cpu", eval_every_epochs=None,
    )  # fmt: skip
    trainer.fit(resume=resume)
    return trainer, model, record


def expected_lrs(step: int) -> list[float]:
    base = 0.01 if step >= 12 else 0.2 - 0.01 * min(step, 10)
    scales = [0.25, 0.5, 1.0]
    freezeout = [cosine(1.0, 0.0, steps=t * TOTAL_STEPS)(step) for t in (0.5, 0.75, 1.0)]
    unfreezing = [0.0 if step < 4 else 1.0, 1.0, 1.0]
    return [base * scale * f * u for scale, f, u in zip(scales, freezeout, unfreezing)]


def test_the_documented_lr_per_group_at_chosen_steps(tmp_path):
    trainer, _, record = run(tmp_path / "run")
    # Worked out by hand (see the module docstring); 0.5 · (1 + cos(π/4)) and cos(3π/4) are FreezeOut's.
    assert record.lrs[0] == pytest.approx([0.0, 0.1, 0.2])  # group 0 frozen by gradual unfreezing
    assert record.lrs[4] == pytest.approx([0.02, 0.06, 0.16 * 0.5 * (1 + math.cos(math.pi / 4))])
    assert record.lrs[8] == pytest.approx([0.0, 0.015, 0.06])  # group 0 frozen by FreezeOut
    assert record.lrs[12] == pytest.approx([0.0, 0.0, 0.01 * 0.5 * (1 + math.cos(3 * math.pi / 4))])
    for step in range(TOTAL_STEPS):
        assert record.lrs[step] == pytest.approx(expected_lrs(step), abs=1e-12)
        groups = trainer.hyperparams_at(step)
        assert [group["lr"] for group in groups] == pytest.approx(record.lrs[step], abs=1e-15)
    # Trainability follows the same plan: group 0 trains only while neither technique freezes it.
    assert [record.trainable[step][0] for step in range(TOTAL_STEPS)] == [False] * 4 + [True] * 4 + [
        False
    ] * 8
    assert [record.trainable[step][1] for step in range(TOTAL_STEPS)] == [True] * 12 + [False] * 4
    # Recorded once per step, in metrics.jsonl, as applied.
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = {line["step"] - 1: line for line in lines if line["kind"] == "train"}
    assert sorted(train) == list(range(TOTAL_STEPS))
    for step, line in train.items():
        assert line["lr_groups"] == pytest.approx(record.lrs[step], abs=1e-15)
        assert line["lr"] == pytest.approx(0.01 if step >= 12 else 0.2 - 0.01 * min(step, 10))
    # Who shaped the LR, for run records.
    described = trainer.state.pipeline.describe()["lr"]
    assert described["replaced_by"] == ["SWA"]
    assert described["modified_by"] == ["FreezeOut", "GradualUnfreezing"]


@pytest.mark.parametrize("resume_step", [4, 8, 12])  # at each technique's boundary
def test_resume_continues_exactly(tmp_path, resume_step):
    _, straight, straight_record = run(tmp_path / "straight")
    saved = checkpoints.checkpoint_path(tmp_path / "straight" / "checkpoints", resume_step)
    _, resumed, resumed_record = run(tmp_path / "resumed", resume=saved)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    for step in range(resume_step, TOTAL_STEPS):
        assert resumed_record.lrs[step] == straight_record.lrs[step]
        assert resumed_record.trainable[step] == straight_record.trainable[step]


def test_plain_loop_pipeline_with_registered_modifiers():
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(
        [{"params": [model.weight], "lr_scale": 0.5}, {"params": [model.bias], "lr_scale": 1.0}], lr=1.0
    )
    pipeline = HyperparamPipeline({"lr": linear(1.0, 0.0, steps=10)})
    pipeline.multiply("lr", [constant(1.0), linear(0.0, 1.0, steps=4)], owner="warm bias")
    assert hyperparams_at(optimizer, 2, pipeline) == [{"lr": 0.4}, {"lr": 0.4}]
    assert pipeline.apply(optimizer, 2) == {"lr": 0.8}
    assert [group["lr"] for group in optimizer.param_groups] == [0.4, 0.4]
    schedule = pipeline.group_schedule("lr", optimizer.param_groups[1], 1)
    assert schedule(2) == pytest.approx(0.4)
    assert repr(schedule).startswith("product(schedules=(linear(start=1.0, end=0.0, steps=10)")


def test_pipeline_errors_name_the_field():
    pipeline = HyperparamPipeline({"lr": 0.1})
    with pytest.raises(
        ValueError, match="unknown hyperparameter 'beta'; allowed: lr, momentum, weight_decay"
    ):
        pipeline.multiply("beta", [1.0], owner="test")
    with pytest.raises(ValueError, match="has no 'momentum' schedule"):
        pipeline.multiply("momentum", [1.0], owner="test")
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['betas'\]"):
        HyperparamPipeline({"betas": 0.9})
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    pipeline.multiply("lr", [1.0, 1.0], owner="test")
    with pytest.raises(ValueError, match="test gives 2 'lr' factors for an optimizer with 1 param groups"):
        pipeline.apply(optimizer, 0)
