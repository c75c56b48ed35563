"""The fine-tuning recipe, cadence.transfer.fine_tune: its plan and one run of it."""

from __future__ import annotations

import pytest
import torch
from transfer_helpers import data, stack

from cadence.train.callback import Callback


def test_fine_tune_trains_the_head_first_then_everything():
    from cadence.data import TensorLoader
    from cadence.transfer.fine_tune import fine_tune

    model = stack(seed=1)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    inputs, targets = data()
    snapshots = {}

    class Snapshot(Callback):
        def on_step_end(self, state):
            if state.step == 4:  # end of the frozen epoch (4 batches)
                snapshots["after_head"] = {k: v.clone() for k, v in state.model.state_dict().items()}
                snapshots["lrs"] = [g["lr"] for g in state.optimizer.param_groups]

        def on_after_backward(self, state):
            if state.step == 6:
                snapshots["phase_two_lrs"] = [g["lr"] for g in state.optimizer.param_groups]

    state = fine_tune(
        model, TensorLoader(inputs, targets, 16, seed=0), n_groups=3, freeze_epochs=1, epochs=2, base_lr=0.01,
        lr_mult=100.0, train_bn=False, callbacks=[Snapshot()], progress=False, device="cpu",
    )  # fmt: skip
    assert state.step == 12
    after_head = snapshots["after_head"]
    assert torch.equal(after_head["0.0.weight"], initial["0.0.weight"])  # body frozen in phase 1
    assert not torch.equal(after_head["3.weight"], initial["3.weight"])
    assert not torch.equal(model.state_dict()["0.0.weight"], initial["0.0.weight"])  # then all trains
    lrs = snapshots["phase_two_lrs"]  # groups: [0+1 (decay, no decay)], [2 ...], [3 ...]
    assert lrs[0] / lrs[-1] == pytest.approx(0.01)  # lr_mult 100 between first and last group
    assert lrs[2] / lrs[-1] == pytest.approx(0.1)


def test_fine_tune_plan_stages():
    from cadence.transfer.fine_tune import fine_tune_plan

    stages = fine_tune_plan(10, freeze_epochs=1, epochs=2, base_lr=0.01)
    assert [(s["at_step"], s["groups"]) for s in stages] == [(0, 1), (10, "all")]
    head = [stages[0]["lr"](step) for step in range(10)]  # one-cycle, warm-up over 99% of the phase
    assert head[:9] == sorted(head[:9])
    assert max(head) == pytest.approx(0.01, rel=0.05)
    assert head.index(max(head)) == 8
    assert max(stages[1]["lr"](step) for step in range(20)) == pytest.approx(0.005)  # then base_lr / 2
    short = fine_tune_plan(1, freeze_epochs=1, epochs=2, base_lr=0.01)  # too short for one-cycle
    assert [s["lr"] for s in short] == [0.01, 0.005]
    assert [s["at_step"] for s in fine_tune_plan(4, freeze_epochs=0, epochs=1)] == [0]
