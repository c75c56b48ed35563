"""FreezeOut: the plan (times, LRs), transitions at the right steps, backward really stops, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transfer.transfer_helpers import data, stack

from cadence.callbacks.freezeout import FreezeOut
from cadence.errors import ConfigError
from cadence.freezing import apply_freezeout, freezeout_lr, freezeout_param_groups, freezeout_times
from cadence.transfer.param_groups import layer_groups


def test_freezeout_times_linear_and_cubic():
    assert freezeout_times(3, 0.5, cubic=False) == [0.5, 0.75, 1.0]
    assert freezeout_times(3, 0.5, cubic=True) == [0.125, 0.421875, 1.0]
    assert freezeout_times(1, 0.5) == [1.0]
    with pytest.raises(ConfigError, match="t0"):
        freezeout_times(3, 0.0)


def test_freezeout_lr_follows_brock_et_al():
    # lr_i(t) = 0.5 * (lr / t_i) * (1 + cos(pi * t / t_i)) for t < t_i, 0 afterwards
    assert freezeout_lr(0, 100, 0.5, 0.1) == pytest.approx(0.2)
    assert freezeout_lr(25, 100, 0.5, 0.1) == pytest.approx(0.1)
    assert freezeout_lr(50, 100, 0.5, 0.1) == 0.0
    assert freezeout_lr(25, 100, 0.5, 0.1, scale_lr=False) == pytest.approx(0.05)
    assert freezeout_lr(10, 100, 1.0, 0.1) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.1)))


def test_transitions_at_the_right_steps_and_backward_stops():
    model = stack()
    groups = layer_groups(model)  # 4 groups; t_i = 0.5, 2/3, 5/6, 1 (linear, t0=0.5)
    optimizer = torch.optim.SGD(freezeout_param_groups(groups), lr=1.0, momentum=0.9)
    inputs, targets = data()
    calls = []  # whether the first group's output is part of the autograd graph at all
    model[0].register_forward_hook(lambda module, args, output: calls.append(output.requires_grad))
    total = 12
    seen = []
    for step in range(total):
        frozen = apply_freezeout(optimizer, groups, step, total, 0.1, t0=0.5, cubic=False)
        seen.append(frozen)
        calls.clear()
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        grads_none = [all(p.grad is None for p in g.params) for g in groups]
        assert grads_none == frozen, step
        assert calls == [not frozen[0]], step  # once frozen, backward cannot reach the first group
    first_frozen = [next(step for step, f in enumerate(seen) if f[i]) if any(f[i] for f in seen) else None
                    for i in range(4)]  # fmt: skip
    assert first_frozen == [6, 8, 10, None]  # ceil(t_i * 12): 6, 8, 10; the last never freezes
    assert [g["lr"] for g in optimizer.param_groups][:3] == [0.0, 0.0, 0.0]


def test_optimizer_must_match_layer_groups():
    model = stack()
    groups = layer_groups(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="freezeout_param_groups"):
        apply_freezeout(optimizer, groups, 0, 10, 0.1)


def run_trainer(run_dir, *, seed=0, resume=None, total_steps=12):
    from cadence.data import TensorLoader
    from cadence.train.trainer import Trainer

    model = stack(seed=seed)
    groups = layer_groups(model)
    optimizer = torch.optim.SGD(freezeout_param_groups(groups), lr=0.1, momentum=0.9, weight_decay=1e-3)
    inputs, targets = data()
    trainer = Trainer(
        model, optimizer, F.cross_entropy, TensorLoader(inputs, targets, 16, seed=1), total_steps=total_steps,
        schedules={"lr": 0.1}, callbacks=[FreezeOut(t0=0.6, groups=groups)], run_dir=run_dir, seed=3,
        progress=False, checkpoint_every_steps=4, keep_checkpoints=10, device="cpu",
    )  # fmt: skip
    state = trainer.fit(resume=resume)
    return model, groups, state


def test_trainer_resume_in_the_middle_is_bitwise_equal(tmp_path):
    from cadence.train import checkpoint as checkpoints

    straight, groups, state = run_trainer(tmp_path / "straight")
    assert state.step == 12
    # t_i = 0.6**3, (0.6 + 0.4/3)**3, (0.6 + 0.8/3)**3, 1 -> frozen from steps 3, 5, 8
    assert [p.requires_grad for p in groups[0].params] == [False, False, False, False]
    # at step 4 the first group is already frozen
    saved = checkpoints.checkpoint_path(tmp_path / "straight" / "checkpoints", 4)
    resumed, _, _ = run_trainer(tmp_path / "resumed", seed=99, resume=saved)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_freezeout_validates_arguments():
    with pytest.raises(ConfigError, match="t0"):
        FreezeOut(t0=1.5)
    with pytest.raises(ConfigError, match="lr"):
        FreezeOut(lr=-1.0)
