"""What the Lightning and Hugging Face callbacks share: cadence's techniques driven by another loop's clock.

A :class:`Bridge` owns one :class:`~cadence.train.state.TrainState` (the model, the optimizer, the
hyperparameter pipeline, the freezing record) and calls cadence's callbacks (:mod:`cadence.callbacks`:
``SnapshotEnsemble``, ``SWA``, ``EMA``, ``FreezeOut``, ``GradualUnfreezing``) from the other loop's hooks,
in the order cadence's Trainer calls them. The only clock is the optimizer update index ``step``, read
from the host loop (Lightning's ``trainer.global_step``, the HF ``state.global_step``), so whatever is a
function of the step (LR, momentum, freezing, which updates are averaged, the snapshot steps) is exact
after a resume; what is not (the averaged weights, the snapshots taken) is in :meth:`Bridge.state_dict`.

Nothing here imports Lightning or transformers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.hyperparams import HyperparamPipeline, ScheduleOrValue
from cadence.train.callback import Callback
from cadence.train.state import TrainState

__all__ = ["Bridge", "check_callbacks"]


def check_callbacks(callbacks: Sequence[Callback], host: str) -> list[Callback]:
    """The cadence callbacks a host loop can run; a clear error for those it cannot."""
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise ConfigError(
                "callbacks= takes cadence callbacks (cadence.callbacks: SnapshotEnsemble, SWA, EMA, "
                f"FreezeOut, GradualUnfreezing), got {type(callback).__name__}; give {host} callbacks to "
                f"{host} itself"
            )
        if getattr(callback, "produces_soft_targets", False):
            raise ConfigError(
                f"{type(callback).__name__} replaces the batch, which a {host} callback cannot do: mix in "
                "your training step instead, x, y = mixup.mix(x, y, seed=seed, step=global_step, "
                "batch_index=batch_index) (a pure function of the step, so resume stays exact)"
            )
    return callbacks


class Bridge:
    """cadence's pipeline and callbacks on another loop's clock (see the module docstring).

    The host calls :meth:`start` once the optimizer exists (with the step it resumes from), then for every
    micro-batch :meth:`before_batch` and after every optimizer update :meth:`after_update`, and :meth:`end`.
    """

    def __init__(
        self,
        schedules: Mapping[str, ScheduleOrValue] | None,
        callbacks: Sequence[Callback],
        *,
        host: str,
        total_steps: int | None = None,
        run_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        self.schedules = dict(schedules or {})
        HyperparamPipeline(self.schedules)  # checks the names now, not when training starts
        self.callbacks = check_callbacks(callbacks, host)
        self.host = host
        self.total_steps = total_steps
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = int(seed)
        self.state: TrainState | None = None
        self._pending: list[dict[str, Any]] | None = None
        self._applied_step: int | None = None

    # -- the host's clock ------------------------------------------------------------------------------------

    def start(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        step: int,
        total_steps: int,
        steps_per_epoch: int,
        device: torch.device,
        run_dir: str | Path | None,
        rank: int = 0,
        world_size: int = 1,
        train_data: Any = None,
        accumulation_steps: int = 1,
    ) -> TrainState:
        """Build the state, restore the callbacks' checkpointed state, run their ``on_fit_start``."""
        total_steps = int(self.total_steps if self.total_steps is not None else total_steps)
        if total_steps < 1:
            raise ConfigError(
                f"the {self.host} run's number of optimizer steps is unknown ({total_steps}); "
                "give total_steps="
            )
        state = TrainState(
            model=model,
            optimizer=optimizer,
            total_steps=total_steps,
            steps_per_epoch=max(1, int(steps_per_epoch)),
            step=int(step),
            accumulation_steps=max(1, int(accumulation_steps)),
            epoch=int(step) // max(1, int(steps_per_epoch)),
            device=device,
            run_dir=self.run_dir if self.run_dir is not None else (Path(run_dir) if run_dir else None),
            seed=self.seed,
            schedules=dict(self.schedules),
            pipeline=HyperparamPipeline(self.schedules),
            rank=int(rank),
            world_size=int(world_size),
            train_data=train_data,
        )
        self.state = state
        if self._pending is not None:
            self._load_callbacks(self._pending)
            self._pending = None
        for callback in self.callbacks:
            callback.on_fit_start(state)
        self._applied_step = None
        self.apply()
        return state

    def apply(self) -> dict[str, float]:
        """Write the pipeline's values for the current step (once per step; cheap to call again)."""
        state = self._require()
        if self._applied_step != state.step:
            state.hyperparams = state.pipeline.apply(state.optimizer, state.step)
            self._applied_step = state.step
        return state.hyperparams

    def epoch_start(self, epoch: int) -> None:
        state = self._require()
        state.epoch = int(epoch)
        for callback in self.callbacks:
            callback.on_epoch_start(state)

    def before_batch(self, step: int, batch_index: int) -> None:
        """Before a micro-batch's forward pass of update ``step``: the step's values, then the freezing."""
        state = self._require()
        state.step = int(step)
        state.batch_index = int(batch_index)
        self.apply()
        for callback in self.callbacks:
            callback.on_batch_start(state)

    def after_update(self, step: int) -> None:
        """After an optimizer update; ``step`` counts it (the host's global step after the update)."""
        state = self._require()
        if int(step) == state.step:
            return  # no update happened (gradient accumulation, a skipped fp16 step)
        state.step = int(step)
        for callback in reversed(self.callbacks):
            callback.on_step_end(state)

    def epoch_end(self) -> None:
        state = self._require()
        for callback in reversed(self.callbacks):
            callback.on_epoch_end(state)

    def end(self) -> None:
        state = self._require()
        for callback in reversed(self.callbacks):
            callback.on_fit_end(state)
        if (
            state.run_dir is not None and state.is_main_process and state.summary_extra
        ):  # callbacks reported it
            from cadence.tracking.run import update_summary_extra

            update_summary_extra(state.run_dir, state.summary_extra)

    # -- checkpointing ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{"step": the step, "callbacks": [each callback's state_dict()]}`` (tensors and plain values)."""
        step = self.state.step if self.state is not None else None
        states = [callback.state_dict() for callback in self.callbacks]
        return {"step": step, "callbacks": states}

    @property
    def stateful(self) -> bool:
        """Whether any callback keeps state a resume needs (SWA/EMA, snapshots)."""
        return any(type(c).state_dict is not Callback.state_dict for c in self.callbacks)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        states = list(state_dict.get("callbacks", []))
        if len(states) != len(self.callbacks):
            raise ConfigError(
                f"the checkpoint holds the state of {len(states)} cadence callbacks, this run has "
                f"{len(self.callbacks)}: resume with the same callbacks= list"
            )
        self._pending = states  # given to the callbacks in start(), before their on_fit_start

    def _load_callbacks(self, states: list[dict[str, Any]]) -> None:
        for callback, saved in zip(self.callbacks, states):
            callback.load_state_dict(saved)

    def _require(self) -> TrainState:
        if self.state is None:
            raise RuntimeError(f"the cadence {self.host} callback was used before training started")
        return self.state


def steps_per_epoch(batches_per_epoch: float, accumulation: int) -> int:
    """Optimizer updates per epoch: ``ceil(batches / accumulation)`` (1 when unknown)."""
    if not math.isfinite(batches_per_epoch) or batches_per_epoch <= 0:
        return 1
    return max(1, math.ceil(batches_per_epoch / max(1, accumulation)))
