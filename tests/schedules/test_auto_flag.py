"""``needs_lr_finder``: the one way cadence asks whether a schedule still waits for the LR finder."""

from __future__ import annotations

from cadence.schedules import needs_lr_finder, one_cycle


def test_auto_schedules_numbers_and_plain_callables():
    assert needs_lr_finder(one_cycle(max_lr="auto", total_steps=10))
    assert not needs_lr_finder(one_cycle(max_lr="auto", total_steps=10).with_lr(0.1))
    assert not needs_lr_finder(0.1)
    assert not needs_lr_finder(lambda step: 0.1)

    class Waiting:  # a user's schedule object may say so with a method, too
        def needs_lr_finder(self) -> bool:
            return True

    assert needs_lr_finder(Waiting())
