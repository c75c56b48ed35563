"""Weight averaging callbacks: SWA (Izmailov et al. 2018) and EMA, on ``torch.optim.swa_utils``.

Both keep an :class:`torch.optim.swa_utils.AveragedModel` of the trained model, evaluate it at the end of
training (metrics added to ``state.metrics`` as ``swa_val_accuracy``, ``ema_val_loss``, ...), save its weights
to ``run_dir/swa_model.pt`` / ``run_dir/ema_model.pt`` (a plain ``state_dict`` of the model's architecture)
and checkpoint the averaged parameters and the count ``n_averaged`` exactly, so a resumed run averages the
same weights as an uninterrupted one. Under ``strategy="fsdp"`` each rank averages its own shards, the
averaged shards go into the sharded checkpoint, and the final file is gathered onto rank 0.

- **SWA** ("Averaging Weights Leads to Wider Optima and Better Generalization"): an equal-weight average of
  the weights visited from ``start`` on, usually with a constant or cyclic LR in that phase; the batch-norm
  statistics of the average are recomputed with :func:`torch.optim.swa_utils.update_bn` at the end.
- **EMA** (Polyak averaging as used by timm and TensorFlow): ``θ̄ ← d·θ̄ + (1-d)·θ`` after every update, with
  the decay warmup ``d_n = min(d, (1+n)/(10+n))`` so early, poor weights are forgotten quickly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn
from torch.optim.swa_utils import AveragedModel

from cadence.averaging import (
    EMAWeights,
    SWALRSchedule,
    SWAWeights,
    WeightAverage,
    ema_decay,
    sharded_state_template,
)
from cadence.callbacks.snapshot import atomic_save
from cadence.ensembles import unwrap_model
from cadence.errors import ConfigError
from cadence.tracking.run_dir import RunDir
from cadence.train.callback import Callback
from cadence.train.state import TrainState
from cadence.weights import is_sharded_module

__all__ = ["EMA", "SWA", "SWALRSchedule", "ema_decay"]

_ANNEAL = ("cos", "linear")


class _Averaging(Callback):
    """Shared machinery: a :class:`cadence.averaging.WeightAverage`, updated, checkpointed and saved."""

    prefix = ""
    filename = ""

    def __init__(self, *, update_every: int, use_buffers: bool, update_bn: bool) -> None:
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ConfigError(
                f"{type(self).__name__} update_every must be an integer >= 1, got {update_every=}"
            )
        self.update_every = update_every
        self.use_buffers = use_buffers
        self.update_bn = update_bn
        self.average: WeightAverage | None = None
        self._pending: dict[str, Any] | None = None
        self._pending_shards: dict[str, Any] | None = None
        self.results: dict[str, float] = {}

    # -- to be specialised ---------------------------------------------------------------------------------
    def _make_average(self, model: nn.Module, total_steps: int = 0) -> WeightAverage:
        raise NotImplementedError

    def _start_step(self, total_steps: int) -> int:
        return 0

    @property
    def averaged(self) -> AveragedModel | None:
        """The :class:`~torch.optim.swa_utils.AveragedModel` (``None`` before ``on_fit_start``)."""
        return self.average.averaged if self.average is not None else None

    # -- hooks ---------------------------------------------------------------------------------------------
    def on_fit_start(self, state: TrainState) -> None:
        self.average = self._make_average(unwrap_model(state.model), state.total_steps)
        if self._pending is not None:
            self.average.load_state_dict(self._pending)
            self._pending = None
        if self._pending_shards is not None:
            self.average.load_sharded_state_dict(self._pending_shards)
            self._pending_shards = None

    def on_step_end(self, state: TrainState) -> None:
        if self.average is not None:
            self.average.update(unwrap_model(state.model), state.step - 1)  # the update that just happened

    @property
    def num_averaged(self) -> int:
        return self.average.num_averaged if self.average is not None else 0

    def on_fit_end(self, state: TrainState) -> None:
        if self.average is None or self.num_averaged == 0:
            return
        model = unwrap_model(state.model)
        sharded = self.average.sharded  # every rank takes part: the steps below gather shards
        if self.update_bn and state.train_data is not None:
            self.average.update_bn(state.train_data, state.device, model=model)  # its epoch 0
        self.results = {}
        if state.evaluate is not None and state.eval_data is not None:
            if sharded:
                with self.average.applied(model):
                    scores = state.evaluate(model, state.eval_data)
            else:
                scores = state.evaluate(self.average.module, state.eval_data)
            self.results = {f"{self.prefix}{name}": float(value) for name, value in scores.items()}
            state.metrics.update(self.results)
        if state.run_dir is not None and (state.is_main_process or sharded):
            self.average.save(Path(state.run_dir) / self.filename, save=atomic_save, model=model)
            if state.is_main_process:
                state.summary_extra[self.prefix.rstrip("_")] = self.summary()

    def summary(self) -> dict[str, Any]:
        """What goes under the run summary's ``extra`` (via ``state.summary_extra``): count, file, metrics."""
        return {"n_averaged": self.num_averaged, "file": self.filename, "metrics": dict(self.results)}

    # -- checkpointing -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.average is None:
            return dict(self._pending) if self._pending is not None else {}
        return self.average.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "averaged" not in state_dict and "n_averaged" not in state_dict:
            return
        if self.average is None:  # the model is not known before on_fit_start: load it there
            self._pending = state_dict
        else:
            self.average.load_state_dict(state_dict)

    def sharded_state_dict(self, model: nn.Module) -> dict[str, Any]:
        """The averaged shards (FSDP): this average's own tensors, or before ``on_fit_start`` (a resume)
        tensors shaped like them to load into."""
        model = unwrap_model(model)
        if self.average is not None:
            return self.average.sharded_state_dict(model) if self.average.sharded else {}
        return sharded_state_template(model) if is_sharded_module(model) else {}

    def load_sharded_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.average is None:
            self._pending_shards = state_dict
        else:
            self.average.load_sharded_state_dict(state_dict)


class SWA(_Averaging):
    """Stochastic Weight Averaging from ``start`` to the end of training.

    Args:
        start: the first step averaged: a fraction of ``total_steps`` (float in [0, 1), default 0.75) or a
            step (int).
        lr: ``None`` (default) keeps the Trainer's LR schedule untouched (average along whatever it does, e.g.
            the tail of a cosine or a cyclic schedule). A float switches to the SWA learning rate from
            ``start`` on, annealed over ``anneal_steps`` from the scheduled value at ``start`` (see
            :class:`SWALRSchedule`): in ``on_fit_start`` the callback replaces the run's LR schedule on
            its hyperparameter pipeline (``state.pipeline``) by that schedule, so every param group gets it
            times its ``lr_scale`` (and any other technique's modifiers). It needs the LR schedule in force:
            ``schedule=``, else the pipeline's (the Trainer's, after earlier callbacks' replacements).
            Equivalent and more explicit: train with ``SWALRSchedule(base, start_step, swa_lr,
            anneal_steps)`` (or ``SWA(lr=...).lr_schedule(base, total_steps)``) as the Trainer's ``"lr"``
            schedule and average with ``SWA(start, lr=None)``.
        anneal_steps: length of the LR annealing to ``lr`` (0 = switch at once).
        anneal: ``"cos"`` or ``"linear"``.
        update_every: average every this many updates (1 = every step).
        schedule: the Trainer's LR schedule, for ``lr=``.

    Batch-norm statistics of the averaged model are recomputed at the end with ``update_bn`` over one epoch
    of the training data (buffers are not averaged).
    """

    prefix = "swa_"
    filename = RunDir.SWA_MODEL

    def __init__(
        self,
        start: float | int = 0.75,
        lr: float | None = None,
        anneal_steps: int = 0,
        anneal: str = "cos",
        update_every: int = 1,
        *,
        schedule: Callable[[int], float] | None = None,
    ) -> None:
        super().__init__(update_every=update_every, use_buffers=False, update_bn=True)
        if isinstance(start, bool) or not isinstance(start, (int, float)):
            raise ConfigError(f"SWA start must be a fraction in [0, 1) or a step, got {start=}")
        if isinstance(start, float) and not 0.0 <= start < 1.0:
            raise ConfigError(f"SWA start as a fraction must be in [0, 1), got {start=}")
        if isinstance(start, int) and start < 0:
            raise ConfigError(f"SWA start must be >= 0, got {start=}")
        if lr is not None and not lr >= 0:
            raise ConfigError(f"SWA lr must be None or >= 0, got {lr=}")
        if anneal not in _ANNEAL:
            raise ConfigError(f"SWA anneal must be one of {', '.join(_ANNEAL)}, got {anneal=}")
        if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int) or anneal_steps < 0:
            raise ConfigError(f"SWA anneal_steps must be an integer >= 0, got {anneal_steps=}")
        self.start = start
        self.lr = lr
        self.anneal_steps = anneal_steps
        self.anneal = anneal
        self.schedule = schedule

    def _start_step(self, total_steps: int) -> int:
        if isinstance(self.start, float):
            return math.floor(self.start * total_steps)
        return int(self.start)

    def lr_schedule(self, base: Callable[[int], float] | float, total_steps: int) -> SWALRSchedule:
        """The Trainer's ``base`` LR schedule with the SWA phase (``lr`` annealed in from ``start``)."""
        if self.lr is None:
            raise ConfigError("SWA.lr_schedule needs SWA(lr=...)")
        return SWALRSchedule(base, self._start_step(total_steps), self.lr, self.anneal_steps, self.anneal)

    def _make_average(self, model: nn.Module, total_steps: int = 0) -> WeightAverage:
        return SWAWeights(model, start_step=self._start_step(total_steps), update_every=self.update_every)

    def on_fit_start(self, state: TrainState) -> None:
        if self._start_step(state.total_steps) >= state.total_steps:
            raise ConfigError(f"SWA start={self.start} is not before total_steps={state.total_steps}")
        super().on_fit_start(state)
        if self.lr is not None:
            base = self.schedule if self.schedule is not None else state.pipeline.schedule("lr")
            if base is None:
                raise ConfigError(
                    "SWA(lr=...) needs the Trainer's LR schedule: pass SWA(..., schedule=the_lr_schedule), "
                    "or train with SWALRSchedule(base, start_step, swa_lr) as the 'lr' schedule, SWA(lr=None)"
                )
            state.pipeline.replace("lr", self.lr_schedule(base, state.total_steps), owner="SWA")


class EMA(_Averaging):
    """Exponential moving average of the weights, updated after every ``update_every`` optimizer steps.

    Args:
        decay: ``d`` in ``θ̄ ← d·θ̄ + (1-d)·θ`` (0.999 by default; 0.9999 for long ImageNet runs).
        warmup: use ``min(d, (1+n)/(10+n))`` for the n-th update (timm, TensorFlow) so the average is not
            dominated by the random initialisation in short runs.
        update_every: update every this many steps.
        use_buffers: also average buffers such as batch-norm running statistics (default True, like timm);
            with ``False`` the buffers are recomputed with ``update_bn`` at the end.

    The first update copies the weights (``n_averaged`` 0 -> 1), as in ``AveragedModel``.
    """

    prefix = "ema_"
    filename = RunDir.EMA_MODEL

    def __init__(
        self, decay: float = 0.999, warmup: bool = True, update_every: int = 1, use_buffers: bool = True
    ) -> None:
        super().__init__(update_every=update_every, use_buffers=use_buffers, update_bn=not use_buffers)
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay=}")
        self.decay = float(decay)
        self.warmup = bool(warmup)

    def _make_average(self, model: nn.Module, total_steps: int = 0) -> WeightAverage:
        return EMAWeights(
            model,
            decay=self.decay,
            warmup=self.warmup,
            update_every=self.update_every,
            use_buffers=self.use_buffers,
        )
