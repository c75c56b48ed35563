"""Drive cadence schedules from loops that expect a torch ``LRScheduler`` (Lightning, Hugging Face, ...).

The adapter is an ``LRScheduler`` for ``isinstance`` checks, but it keeps no schedule state besides the step
counter: ``step()`` advances it and writes the values for the new step with
:func:`~cadence.hyperparams.set_hyperparams`. It does not wrap ``optimizer.step`` and does not add
``initial_lr`` to the param groups (torch's base ``__init__`` is deliberately not called).

Example::

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = one_cycle(0.1, total_steps=1000)
    scheduler = LRSchedulerAdapter(optimizer, lr=schedule, momentum=schedule.momentum())
    for x, y in batches:          # update i uses schedule(i), as with torch's schedulers
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad(); scheduler.step()

    # Lightning: return {"optimizer": optimizer,
    #                    "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from cadence.schedules.base import check_integer

if TYPE_CHECKING:
    from cadence.hyperparams import ScheduleOrValue

__all__ = ["LRSchedulerAdapter"]


class LRSchedulerAdapter(LRScheduler):
    """A torch ``LRScheduler`` that applies cadence schedules (or constants) once per ``step()``.

    ``last_epoch`` counts ``step()`` calls (torch's name); the values written are those of schedule step
    ``last_epoch``, so the first optimizer update uses step 0. ``lr`` is multiplied by each param group's
    ``lr_scale``. ``state_dict()`` holds only the counter, so resuming is exact: load it (before or after the
    optimizer's state) and the values for the resumed step are written again.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr: ScheduleOrValue | None = None,
        momentum: ScheduleOrValue | None = None,
        weight_decay: ScheduleOrValue | None = None,
        last_step: int = -1,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if lr is None and momentum is None and weight_decay is None:
            raise ValueError("give at least one of lr, momentum, weight_decay (a schedule or a number)")
        self.optimizer = optimizer
        self.lr_schedule = lr
        self.momentum_schedule = momentum
        self.weight_decay_schedule = weight_decay
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = check_integer("last_step", last_step, low=-1) + 1
        self._apply()

    def _apply(self) -> None:
        from cadence.hyperparams import set_hyperparams  # the pipeline is built on this package

        set_hyperparams(
            self.optimizer,
            self.last_epoch,
            lr=self.lr_schedule,
            momentum=self.momentum_schedule,
            weight_decay=self.weight_decay_schedule,
        )
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:
        """Advance to the next step (or jump to step ``epoch``) and write its values."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else check_integer("epoch", epoch, low=0)
        self._apply()

    def get_lr(self) -> list[float]:
        """The learning rates written for the current step, one per param group."""
        return list(self._last_lr)

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """``{"last_epoch": int}``: everything else is a pure function of it."""
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = check_integer("last_epoch", state_dict["last_epoch"], low=0)
        self._apply()

    def __repr__(self) -> str:
        return (
            f"LRSchedulerAdapter(lr={self.lr_schedule!r}, momentum={self.momentum_schedule!r}, "
            f"weight_decay={self.weight_decay_schedule!r}, last_epoch={self.last_epoch})"
        )
