"""The training losses between two log points: kept on the device, read in one transfer, then logged.

Reading a value back from the device makes the host wait for all the work queued before it, so the Trainer
reads nothing per step: each step leaves its loss (a 0-dimensional tensor), under fp16 whether its update
was applied, and the label-range checks of its batches in a :class:`LossReads`; :meth:`LossReads.read`
stacks them, averages them over the ranks with one ``all_reduce`` and reads them with one ``.tolist()``
(see docs/distributed.md, "Host reads and collectives per step").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from cadence import distributed
from cadence.errors import ConfigError
from cadence.train.stall import update_trend
from cadence.train.state import TrainState

__all__ = ["LossReads", "NonFiniteLoss", "PendingStep"]


@dataclass
class PendingStep:
    """A step whose loss (and, under fp16, whether its update was applied) is still on the device."""

    record: dict[str, Any]  # its metrics.jsonl record, the loss still to fill in
    loss: torch.Tensor | float  # a float once read (log_every_n_steps=1 reads it before the update)
    applied: torch.Tensor | None  # None: the update is always applied (fp32, bf16)


@dataclass(frozen=True)
class NonFiniteLoss:
    """The first non-finite loss a read found: its value, its 0-based step, epoch and LR (None: unknown)."""

    value: float
    step: int
    epoch: float
    lr: float | None


@dataclass
class LossReads:
    """What the steps since the last read left on the device (see the module docstring)."""

    distributed: bool = False
    num_classes: int | None = None
    pending: list[PendingStep] = field(default_factory=list)
    #: 0-dimensional bool tensors, true when a batch had a label outside ``[0, num_classes)``
    label_errors: list[torch.Tensor] = field(default_factory=list)

    def add(self, record: dict[str, Any], loss: torch.Tensor | float, applied: torch.Tensor | None) -> None:
        self.pending.append(PendingStep(record, loss, applied))

    def clear(self) -> None:
        """Forget the pending steps (after a divergence: their parameters are not to be logged as good)."""
        self.pending = []

    def read(
        self,
        state: TrainState,
        log: Callable[[dict[str, Any]], None],
        *,
        current: torch.Tensor | None = None,
        epoch: float = 0.0,
    ) -> tuple[float | None, NonFiniteLoss | None]:
        """Read and ``log`` every pending step (in order, until a non-finite loss), and ``current``, the loss
        of the step about to be applied (``log_every_n_steps=1``; its update is at ``epoch``).

        Returns ``current``'s value (mean over processes; None without it or after a non-finite pending
        loss) and the first non-finite loss found, if any. Updates ``state``'s loss trend, ``last_loss`` and
        ``skipped_steps``; a batch with a label out of range raises :class:`ConfigError`. Under DDP every rank
        calls this at the same steps.
        """
        pending, self.pending = self.pending, []
        errors, self.label_errors = self.label_errors, []
        values = [entry.loss for entry in pending if isinstance(entry.loss, torch.Tensor)]
        values += [current] if current is not None else []
        values += [entry.applied for entry in pending if entry.applied is not None]
        values += errors
        numbers: list[float] = []
        if values:
            stacked = torch.stack([value.detach().reshape(()).double() for value in values])
            if self.distributed:
                stacked = distributed.all_reduce_mean_tensor(
                    stacked, what=f"the loss read at step {state.step}"
                )
            numbers = stacked.tolist()  # the one host read of the interval
        losses = iter(numbers)
        read = [next(losses) if isinstance(entry.loss, torch.Tensor) else entry.loss for entry in pending]
        current_value = next(losses) if current is not None else None
        flags = iter([next(losses) for entry in pending if entry.applied is not None])
        if any(value > 0 for value in losses):  # what is left: the label checks
            first = pending[0].record["step"] - 1 if pending else state.step
            classes = self.num_classes if self.num_classes is not None else 0
            raise ConfigError(
                f"class labels must lie in [0, {classes - 1}] for num_classes={self.num_classes}; "
                f"a batch of steps {first} to {state.step} has labels outside that range"
            )
        for entry, value in zip(pending, read, strict=True):
            skipped = entry.applied is not None and next(flags) < 0.5
            step = entry.record["step"] - 1  # the 0-based index of the update
            if not math.isfinite(value):
                return None, NonFiniteLoss(value, step, entry.record["epoch"], entry.record["lr"])
            state.loss_start, state.loss_average = update_trend(
                state.loss_start, state.loss_average, step, value, state.total_steps
            )
            state.last_loss = value
            state.skipped_steps += skipped
            log(completed_record(entry.record, value, skipped))
        if current_value is not None and not math.isfinite(current_value):
            return current_value, NonFiniteLoss(current_value, state.step, epoch, None)
        return current_value, None


def completed_record(record: dict[str, Any], loss: float, skipped: bool) -> dict[str, Any]:
    """``record`` with its loss read, and ``"skipped": True`` before its time when fp16 skipped the update."""
    completed: dict[str, Any] = {}
    for key, value in record.items():
        if key == "time" and skipped:
            completed["skipped"] = True
        completed[key] = loss if key == "loss" else value
    return completed
