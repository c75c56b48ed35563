"""The Callback base class: a handful of typed hooks, each a no-op by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from cadence.train.state import TrainState

__all__ = ["HOOKS", "Callback", "hook_table"]

#: Hook names in the order they first fire. ``*_end`` hooks run over callbacks in reverse order.
HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "on_after_backward",
    "on_step_end",
    "on_eval_end",
    "on_epoch_end",
    "on_fit_end",
)


class Callback:
    """Subclass and override the hooks you need. Talk to the loop only through ``state``.

    A callback that keeps state across steps returns it from :meth:`state_dict` (tensors, numbers, strings,
    lists and dicts only, so that checkpoints load with ``weights_only=True``) and restores it in
    :meth:`load_state_dict`. Anything derivable from ``state.step`` should be derived, not stored.
    """

    #: True for callbacks that change what a training step computes (mixup, FreezeOut, gradual unfreezing):
    #: the LR race trains its candidates with copies of them, and leaves the others (snapshots, SWA, ...) out.
    shapes_training: bool = False
    #: True for callbacks that freeze or unfreeze parameters during the run (FreezeOut, gradual unfreezing):
    #: DDP is then built so that gradients of parameters frozen later still synchronise.
    changes_trainable: bool = False
    #: True for callbacks that keep a full copy of the model's weights: refused under ``strategy="fsdp"``,
    #: whose ranks hold only shards of them (SWA, EMA and snapshots keep shards there; see
    #: :meth:`sharded_state_dict`).
    keeps_full_weights: bool = False

    def on_fit_start(self, state: TrainState) -> None:
        """Once, before the first step (also after a resume, with counters already restored)."""

    def on_epoch_start(self, state: TrainState) -> None:
        """At the start of each epoch (also the partial epoch a resume continues)."""

    def on_batch_start(self, state: TrainState) -> None:
        """Before each micro-batch's forward pass; may replace ``state.batch``."""

    def on_after_backward(self, state: TrainState) -> None:
        """After each micro-batch's backward pass (gradients are still scaled under fp16)."""

    def on_step_end(self, state: TrainState) -> None:
        """After each optimizer update; ``state.step`` already counts it."""

    def on_eval_end(self, state: TrainState) -> None:
        """After each evaluation; ``state.metrics`` holds the results."""

    def on_epoch_end(self, state: TrainState) -> None:
        """At the end of each epoch, after the epoch's evaluation."""

    def on_fit_end(self, state: TrainState) -> None:
        """Once, after the last step (also when stopped early or by divergence)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint; empty for stateless callbacks."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def sharded_state_dict(self, model: nn.Module) -> dict[str, Any]:
        """Tensors sharded like the parameters of the sharded ``model`` (``DTensor``) that a sharded
        checkpoint (``strategy="fsdp"``) writes with the model's shards; ``{}`` (the default) for none.

        Called on every rank, when a checkpoint is written and, on resume, *before* :meth:`on_fit_start`, to
        give ``torch.distributed.checkpoint`` tensors to load into in place; the loaded ones are then handed
        to :meth:`load_sharded_state_dict`. :meth:`state_dict` (rank 0's, in the checkpoint file) holds the
        rest.
        """
        return {}

    def load_sharded_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the tensors of :meth:`sharded_state_dict`, loaded from a sharded checkpoint."""


def hook_table(callbacks: list[Callback]) -> dict[str, list[Callable[[TrainState], None]]]:
    """Per hook, the bound methods to call, in call order (reversed for ``*_end`` hooks)."""
    # Without the base class's no-ops: an unused hook costs nothing per step.
    table = {}
    for hook in HOOKS:
        ordered = list(reversed(callbacks)) if hook.endswith("_end") else callbacks
        table[hook] = [
            getattr(callback, hook)
            for callback in ordered
            if getattr(type(callback), hook, None) is not None
            and getattr(type(callback), hook) is not getattr(Callback, hook)
        ]
    return table
