"""GradualUnfreezing: stage transitions at the right steps, per-stage LRs, exact resume; fine_tune recipe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transfer.transfer_helpers import data, stack

from cadence.callbacks.unfreezing import GradualUnfreezing
from cadence.errors import ConfigError
from cadence.train.callback import Callback
from cadence.transfer.param_groups import discriminative_lrs, layer_groups


class Record(Callback):
    """Which groups are trainable and which LRs are set, at every step (after the other callbacks)."""

    def __init__(self, groups) -> None:
        self.groups = groups
        self.trainable: list[list[bool]] = []
        self.lrs: list[list[float]] = []

    def on_after_backward(self, state):
        self.trainable.append([all(p.requires_grad for p in g.params) for g in self.groups])
        self.lrs.append([g["lr"] for g in state.optimizer.param_groups])


def run(run_dir, stages, *, seed=0, resume=None, total_steps=12, checkpoint_every_steps=None):
    from cadence.data import TensorLoader
    from cadence.train.trainer import Trainer

    model = stack(seed=seed)
    groups = layer_groups(model, n_groups=3)
    optimizer = torch.optim.AdamW(discriminative_lrs(groups, factor=2.0), lr=0.01, weight_decay=0.1)
    inputs, targets = data()
    record = Record(groups)
    trainer = Trainer(
        model, optimizer, F.cross_entropy, TensorLoader(inputs, targets, 16, seed=1), total_steps=total_steps,
        schedules={"lr": 0.01}, callbacks=[GradualUnfreezing(stages, groups=groups, train_bn=False), record],
        run_dir=run_dir, seed=3, progress=False, checkpoint_every_steps=checkpoint_every_steps,
        keep_checkpoints=10, device="cpu",
    )  # fmt: skip
    trainer.fit(resume=resume)
    return model, record


STAGES = [
    {"at_step": 0, "groups": 1, "lr": 0.04},
    {"at_epoch": 1, "groups": 2},  # 4 batches per epoch -> step 4; the Trainer's LR again
    {"at": 0.75, "groups": "all", "lr": lambda step: 0.001 * (step + 1)},  # step 9, local clock
]


def test_transitions_and_stage_lrs(tmp_path):
    _, record = run(None, STAGES)
    expected = [[False, False, True]] * 4 + [[False, True, True]] * 5 + [[True, True, True]] * 3
    assert record.trainable == expected
    # stage LR times lr_scale (1/4, 1/2, 1) times the pipeline's 0 for a frozen group (train_bn=False)
    assert record.lrs[0] == [0.0, 0.0, 0.04]
    assert record.lrs[4] == [0.0, 0.005, 0.01]
    assert record.lrs[9] == pytest.approx([0.00025, 0.0005, 0.001])
    assert record.lrs[11] == pytest.approx([0.00075, 0.0015, 0.003])


def test_frozen_groups_do_not_move_while_frozen():
    initial = {k: v.clone() for k, v in stack(seed=0).state_dict().items()}
    model, _ = run(None, [{"at_step": 0, "groups": 1}], total_steps=6)
    state = model.state_dict()
    assert torch.equal(state["0.0.weight"], initial["0.0.weight"])
    assert torch.equal(state["2.0.weight"], initial["2.0.weight"])
    assert not torch.equal(state["3.weight"], initial["3.weight"])


@pytest.mark.parametrize("resume_step", [4, 8])  # at the stage boundary and inside the second stage
def test_resume_in_the_middle_is_bitwise_equal(tmp_path, resume_step):
    from cadence.train import checkpoint as checkpoints

    straight, straight_record = run(tmp_path / "straight", STAGES, checkpoint_every_steps=4)
    saved = checkpoints.checkpoint_path(tmp_path / "straight" / "checkpoints", resume_step)
    resumed, resumed_record = run(
        tmp_path / "resumed", STAGES, seed=5, resume=saved, checkpoint_every_steps=4
    )
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert resumed_record.trainable == straight_record.trainable[resume_step:]
    assert resumed_record.lrs == straight_record.lrs[resume_step:]


def test_stage_validation():
    with pytest.raises(ConfigError, match="exactly one of"):
        GradualUnfreezing([{"groups": 1}])
    with pytest.raises(ConfigError, match="groups must be"):
        GradualUnfreezing([{"at_step": 0, "groups": 0}])
    with pytest.raises(ConfigError, match="unknown keys"):
        GradualUnfreezing([{"at_step": 0, "groups": 1, "lr_max": 1}])
    callback = GradualUnfreezing([{"at_step": 2, "groups": 1}])
    with pytest.raises(ConfigError, match="start at step 0"):
        callback.stage_starts(10, 5)
    callback = GradualUnfreezing(
        [{"at_step": 0, "groups": 1}, {"at": 0.8, "groups": 2}, {"at_step": 3, "groups": 3}]
    )
    with pytest.raises(ConfigError, match="in order"):
        callback.stage_starts(10, 5)


def test_stage_schedules_from_config_dicts():
    callback = GradualUnfreezing(
        [{"at": 0, "groups": 1, "lr": {"name": "one_cycle", "max_lr": 0.1, "total_steps": 100}}]
    )
    assert callback.stages[0].lr(29) == pytest.approx(0.1, rel=1e-3)  # the peak at pct_start * steps


def test_train_bn_false_keeps_frozen_norm_layers_in_eval_mode():
    from types import SimpleNamespace

    model = stack()
    groups = layer_groups(model, n_groups=2)  # [0+1 (has batch norm), 2+3]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    callback = GradualUnfreezing(
        [{"at_step": 0, "groups": 1}, {"at_step": 2, "groups": "all"}], groups=groups, train_bn=False
    )
    from cadence.hyperparams import HyperparamPipeline

    state = SimpleNamespace(
        model=model.train(), optimizer=optimizer, step=0, total_steps=4, steps_per_epoch=4, hyperparams={},
        pipeline=HyperparamPipeline(),
    )  # fmt: skip
    callback.on_fit_start(state)
    callback.on_batch_start(state)
    assert not model[0][1].training
    assert not model[0][1].weight.requires_grad
    running = model[0][1].running_mean.clone()
    model(torch.randn(8, 4))
    assert torch.equal(model[0][1].running_mean, running)
    state.step = 2
    callback.on_batch_start(state)
    assert model[0][1].training
    assert model[0][1].weight.requires_grad
