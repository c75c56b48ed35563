"""Weight averaging callbacks: SWA (Izmailov et al. 2018) and EMA, on ``torch.optim.swa_utils``.

Both keep an :class:`torch.optim.swa_utils.AveragedModel` of the trained model, evaluate it at the end of
training (metrics added to ``state.metrics`` as ``swa_val_accuracy``, ``ema_val_loss``, ...), save its weights
to ``run_dir/swa_model.pt`` / ``run_dir/ema_model.pt`` (a plain ``state_dict`` of the model's architecture)
and checkpoint the averaged parameters and the count ``n_averaged`` exactly, so a resumed run averages the
same weights as an uninterrupted one.

- **SWA** ("Averaging Weights Leads to Wider Optima and Better Generalization"): an equal-weight average of
  the weights visited from ``start`` on, usually with a constant or cyclic LR in that phase; the batch-norm
  statistics of the average are recomputed with :func:`torch.optim.swa_utils.update_bn` at the end.
- **EMA** (Polyak averaging as used by timm and TensorFlow): ``θ̄ ← d·θ̄ + (1-d)·θ`` after every update, with
  the decay warmup ``d_n = min(d, (1+n)/(10+n))`` so early, poor weights are forgotten quickly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from cadence.callbacks.snapshot import atomic_save
from cadence.ensembles import unwrap_model
from cadence.errors import ConfigError
from cadence.hyperparams import as_schedule
from cadence.schedules.base import Schedule
from cadence.schedules.combinators import join
from cadence.schedules.primitives import constant, cosine, linear
from cadence.tracking.run import update_summary_extra
from cadence.train.callback import Callback
from cadence.train.state import TrainState

__all__ = ["EMA", "SWA", "SWALRSchedule", "ema_decay"]

_ANNEAL = ("cos", "linear")


def ema_decay(decay: float, num_averaged: int, warmup: bool = True) -> float:
    """The EMA decay used for the update after ``num_averaged`` earlier ones: ``min(d, (1+n)/(10+n))``."""
    if not warmup:
        return decay
    return min(decay, (1.0 + num_averaged) / (10.0 + num_averaged))


@dataclass(frozen=True, repr=False)
class SWALRSchedule(Schedule):
    """An LR schedule that follows ``base`` until ``start_step`` and then anneals to ``swa_lr``.

    For ``step >= start_step`` with ``t = min(1, (step - start_step) / anneal_steps)``::

        lr = swa_lr + (base(start_step) - swa_lr) · (1 + cos(π t)) / 2     (anneal="cos")
        lr = swa_lr + (base(start_step) - swa_lr) · (1 - t)                (anneal="linear")

    the same shape as ``torch.optim.swa_utils.SWALR`` but a pure function of the step. It is built from the
    schedule primitives: ``join((base, cosine(base(start_step), swa_lr, steps=anneal_steps)),
    boundaries=(start_step,))`` (``linear`` for ``anneal="linear"``, ``constant(swa_lr)`` without annealing).
    Give it to the Trainer as its ``"lr"`` schedule, or let :class:`SWA` with ``lr=`` register it on the
    run's hyperparameter pipeline.
    """

    call_name = "SWALRSchedule"
    base: Callable[[int], float] | float
    start_step: int
    swa_lr: float
    anneal_steps: int = 0
    anneal: str = "cos"

    def __post_init__(self) -> None:
        if self.anneal not in _ANNEAL:
            raise ConfigError(f"SWA anneal must be one of {', '.join(_ANNEAL)}, got anneal={self.anneal!r}")
        if self.anneal_steps < 0 or self.start_step < 0:
            raise ConfigError(
                f"SWA start and anneal_steps must be >= 0, got {self.start_step=}, {self.anneal_steps=}"
            )
        if not self.swa_lr >= 0:
            raise ConfigError(f"SWA lr must be >= 0, got {self.swa_lr=}")
        object.__setattr__(self, "_built", self.build())

    def build(self) -> Schedule:
        """The composed schedule this one evaluates."""
        base = as_schedule(self.base)
        if self.anneal_steps == 0:
            phase: Schedule = constant(float(self.swa_lr))
        else:
            shape = cosine if self.anneal == "cos" else linear
            phase = shape(base(self.start_step), float(self.swa_lr), steps=self.anneal_steps)
        return phase if self.start_step == 0 else join((base, phase), (float(self.start_step),))

    def at(self, t: float) -> float:
        return self._built.at(t)  # type: ignore[attr-defined]

    @property
    def duration(self) -> float:
        return self._built.duration  # type: ignore[attr-defined]


class _Averaging(Callback):
    """Shared machinery: build, update, checkpoint, evaluate and save an AveragedModel."""

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
        self.averaged: AveragedModel | None = None
        self._pending: dict[str, Any] | None = None
        self.results: dict[str, float] = {}

    # -- to be specialised ---------------------------------------------------------------------------------
    def _make_averaged(self, model: nn.Module) -> AveragedModel:
        raise NotImplementedError

    def _start_step(self, total_steps: int) -> int:
        return 0

    # -- hooks ---------------------------------------------------------------------------------------------
    def on_fit_start(self, state: TrainState) -> None:
        self.averaged = self._make_averaged(unwrap_model(state.model))
        if self._pending is not None:
            self._load_averaged(self._pending)
            self._pending = None

    def on_step_end(self, state: TrainState) -> None:
        finished = state.step - 1  # the update that just happened
        start = self._start_step(state.total_steps)
        if self.averaged is None or finished < start or (finished - start) % self.update_every:
            return
        self.averaged.update_parameters(unwrap_model(state.model))

    @property
    def num_averaged(self) -> int:
        return int(self.averaged.n_averaged) if self.averaged is not None else 0

    def on_fit_end(self, state: TrainState) -> None:
        if self.averaged is None or self.num_averaged == 0:
            return
        if self.update_bn and state.train_data is not None and _has_batch_norm(self.averaged):
            data = state.train_data
            batches = data.batches(0) if hasattr(data, "batches") else data
            update_bn(_inputs_only(batches), self.averaged, device=state.device)
        self.results = {}
        if state.evaluate is not None and state.eval_data is not None:
            scores = state.evaluate(self.averaged.module, state.eval_data)
            self.results = {f"{self.prefix}{name}": float(value) for name, value in scores.items()}
            state.metrics.update(self.results)
        if state.run_dir is not None and state.is_main_process:
            atomic_save(self.averaged.module.state_dict(), Path(state.run_dir) / self.filename)
            update_summary_extra(state.run_dir, {self.prefix.rstrip("_"): self.summary()})

    def summary(self) -> dict[str, Any]:
        """What to record under the run summary's ``extra``: count, file and final metrics."""
        return {"n_averaged": self.num_averaged, "file": self.filename, "metrics": dict(self.results)}

    # -- checkpointing -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.averaged is None:
            return dict(self._pending) if self._pending is not None else {}
        return {
            "averaged": {name: tensor.detach().clone() for name, tensor in self.averaged.state_dict().items()}
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "averaged" not in state_dict:
            return
        if self.averaged is None:  # the model is not known before on_fit_start: load it there
            self._pending = state_dict
        else:
            self._load_averaged(state_dict)

    def _load_averaged(self, state_dict: dict[str, Any]) -> None:
        assert self.averaged is not None
        self.averaged.load_state_dict(state_dict["averaged"])


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def _inputs_only(batches: Any):
    for batch in batches:
        yield batch[0] if isinstance(batch, (list, tuple)) else batch


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
    filename = "swa_model.pt"

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

    def _make_averaged(self, model: nn.Module) -> AveragedModel:
        return AveragedModel(model, use_buffers=False)

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
    filename = "ema_model.pt"

    def __init__(
        self, decay: float = 0.999, warmup: bool = True, update_every: int = 1, use_buffers: bool = True
    ) -> None:
        super().__init__(update_every=update_every, use_buffers=use_buffers, update_bn=not use_buffers)
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay=}")
        self.decay = float(decay)
        self.warmup = bool(warmup)

    def _average(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor | int
    ) -> None:
        decay = ema_decay(self.decay, int(num_averaged), self.warmup)
        get_ema_multi_avg_fn(decay)(averaged, current, num_averaged)

    def _make_averaged(self, model: nn.Module) -> AveragedModel:
        return AveragedModel(model, multi_avg_fn=self._average, use_buffers=self.use_buffers)

    def on_fit_start(self, state: TrainState) -> None:
        super().on_fit_start(state)
        self._count = self.num_averaged  # the update count on the host: read once, not per update

    def on_step_end(self, state: TrainState) -> None:
        # AveragedModel.update_parameters reads its count tensor twice per update; this update does the
        # same arithmetic (copy first, then one lerp per device and dtype) with the count kept here.
        finished = state.step - 1
        if self.averaged is None or finished % self.update_every:
            return
        model = unwrap_model(state.model)
        pairs = list(zip(self.averaged.module.parameters(), model.parameters(), strict=True))
        buffers = list(zip(self.averaged.module.buffers(), model.buffers(), strict=True))
        if self.use_buffers:
            pairs += buffers
        groups: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        for averaged, current in pairs:
            averaged_list, current_list = groups.setdefault((averaged.device, averaged.dtype), ([], []))
            averaged_list.append(averaged.detach())
            current_list.append(current.detach().to(averaged.device))
        for averaged_list, current_list in groups.values():
            if self._count == 0:
                torch._foreach_copy_(averaged_list, current_list)
            else:
                self._average(averaged_list, current_list, self._count)
        if not self.use_buffers:
            for averaged, current in buffers:
                averaged.detach().copy_(current.detach())
        self.averaged.n_averaged += 1  # in place on its CPU buffer: nothing read
        self._count += 1
