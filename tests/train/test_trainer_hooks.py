"""The golden hook order and the loop's counting."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from trainer_helpers import as_list, make_data, make_model

from cadence.train.callback import HOOKS, Callback
from cadence.train.trainer import Trainer


class Recorder(Callback):
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def _record(self, hook, state):
        self.log.append((self.name, hook, state.step, state.epoch, state.batch_index))


for _hook in HOOKS:
    setattr(Recorder, _hook, lambda self, state, _hook=_hook: self._record(_hook, state))


def test_golden_hook_order():
    inputs, targets = make_data(samples=12)
    log: list = []
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        as_list(inputs, targets, 4),  # 3 micro-batches per epoch
        epochs=2,
        accumulation_steps=2,  # -> 2 steps per epoch: micro-batches (2, 1)
        eval_data=as_list(inputs, targets, 6),
        callbacks=[Recorder("a", log), Recorder("b", log)],
        progress=False,
    )
    state = trainer.fit()
    assert state.step == 4
    assert state.steps_per_epoch == 2
    assert state.total_steps == 4
    events = [(name, hook, step, epoch, batch) for name, hook, step, epoch, batch in log]
    expected = [("a", "on_fit_start", 0, 0, 0), ("b", "on_fit_start", 0, 0, 0)]
    for epoch in range(2):
        first = epoch * 2
        expected += [("a", "on_epoch_start", first, epoch, 0), ("b", "on_epoch_start", first, epoch, 0)]
        # step 1 of the epoch: two micro-batches; step 2: one
        for micro_batches, step in ((2, first), (1, first + 1)):
            base = 0 if step == first else 2
            for micro in range(micro_batches):
                expected += [("a", "on_batch_start", step, epoch, base + micro)]
                expected += [("b", "on_batch_start", step, epoch, base + micro)]
                expected += [("a", "on_after_backward", step, epoch, base + micro)]
                expected += [("b", "on_after_backward", step, epoch, base + micro)]
            end = base + micro_batches
            expected += [
                ("b", "on_step_end", step + 1, epoch, end),
                ("a", "on_step_end", step + 1, epoch, end),
            ]
        expected += [("b", "on_eval_end", first + 2, epoch, 3), ("a", "on_eval_end", first + 2, epoch, 3)]
        expected += [("b", "on_epoch_end", first + 2, epoch, 3), ("a", "on_epoch_end", first + 2, epoch, 3)]
    expected += [("b", "on_fit_end", 4, 2, 0), ("a", "on_fit_end", 4, 2, 0)]
    assert events == expected


def test_schedules_are_applied_before_every_update_and_step_counts_updates():
    inputs, targets = make_data(samples=40)
    seen = []

    class Watch(Callback):
        def on_batch_start(self, state):
            seen.append((state.step, state.optimizer.param_groups[0]["lr"], state.hyperparams["momentum"]))

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.5)
    for group in optimizer.param_groups:
        group["lr_scale"] = 0.5
    state = Trainer(
        model,
        optimizer,
        F.cross_entropy,
        as_list(inputs, targets, 8),  # 5 batches, accumulation 2 -> 3 steps per epoch
        epochs=2,
        accumulation_steps=2,
        schedules={"lr": lambda step: 0.1 * (step + 1), "momentum": 0.8},
        callbacks=[Watch()],
        progress=False,
    ).fit()
    assert state.total_steps == 6
    assert state.step == 6
    steps = [step for step, _, _ in seen]
    assert steps == [0, 0, 1, 1, 2, 3, 3, 4, 4, 5]
    for step, lr, momentum in seen:
        assert lr == 0.5 * 0.1 * (step + 1)
        assert momentum == 0.8
    assert optimizer.param_groups[0]["momentum"] == 0.8


def test_total_steps_stops_inside_an_epoch():
    inputs, targets = make_data(samples=40)
    model = make_model()
    state = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        as_list(inputs, targets, 8),
        total_steps=7,
        progress=False,
    ).fit()
    # 5 batches per epoch: the budget ends after the second batch of epoch 1, and the counters point at
    # the next unseen batch of that epoch (what a resume from the final checkpoint continues with).
    assert (state.step, state.epoch, state.batch_index) == (7, 1, 2)
