"""Print the LR scaling of a run when it starts, and record it in the run's ``summary.json``.

A callback, so it lives with the callbacks (above ``cadence.train`` and ``cadence.distributed``): the
distributed layer itself knows nothing of the Trainer.
"""

from __future__ import annotations

import sys
from typing import TextIO

from cadence.distributed.scaling import LRScalingPlan
from cadence.train.callback import Callback
from cadence.train.state import TrainState

__all__ = ["RecordLRScaling"]


class RecordLRScaling(Callback):
    """On rank 0: print :meth:`LRScalingPlan.summary` at fit start (unless ``print_summary=False``) and
    report :meth:`LRScalingPlan.to_dict` on ``state.summary_extra["lr_scaling"]`` at fit end (when the run
    has a directory), which the Trainer writes to ``summary.json`` → ``extra.lr_scaling``.

    Example::

        plan = lr_scaling_plan(0.1, per_device_batch=128, world_size=get_world_size(), total_steps=3000)
        trainer = Trainer(..., schedules={"lr": plan.apply(0.1)}, callbacks=[RecordLRScaling(plan)])
    """

    def __init__(
        self, plan: LRScalingPlan, *, print_summary: bool = True, stream: TextIO | None = None
    ) -> None:
        self.plan = plan
        self.print_summary = print_summary
        self.stream = stream

    def on_fit_start(self, state: TrainState) -> None:
        if self.print_summary and state.is_main_process:
            print(self.plan.summary(), file=self.stream or sys.stdout, flush=True)

    def on_fit_end(self, state: TrainState) -> None:
        if state.is_main_process and state.run_dir is not None:
            state.summary_extra["lr_scaling"] = self.plan.to_dict()
