"""Weight averaging in any loop: SWA (Izmailov et al. 2018) and EMA, on ``torch.optim.swa_utils``.

The plain-loop form of :class:`cadence.callbacks.SWA` / :class:`cadence.callbacks.EMA` (which call this
module), usable as is in a hand-written loop, a Lightning or a Hugging Face callback::

    ema = EMAWeights(model, decay=0.999)              # or SWAWeights(model, start_step=750)
    for step, (x, y) in enumerate(batches):
        ...; optimizer.step()
        ema.update(model, step)                       # after update `step` (0-based)
    evaluate(ema.module)

- **SWA** ("Averaging Weights Leads to Wider Optima and Better Generalization"): an equal-weight average of
  the weights after updates ``start_step, start_step + update_every, ...``; batch-norm statistics are not
  averaged, recompute them with :meth:`WeightAverage.update_bn` before using the average.
- **EMA** (Polyak averaging as used by timm and TensorFlow): ``θ̄ ← d·θ̄ + (1-d)·θ`` after every
  ``update_every``-th update, with the decay warmup ``d_n = min(d, (1+n)/(10+n))`` so early, poor weights are
  forgotten quickly. The first update copies the weights.

Which updates are averaged is a function of ``step`` alone, and :meth:`WeightAverage.state_dict` holds the
averaged tensors and the count, so a resumed run averages exactly the weights an uninterrupted one does.

A model sharded by FSDP2 (``fully_shard``) is averaged shard by shard: each rank keeps a copy of its own
``1/N`` of the weights (no copy of the module), :meth:`WeightAverage.applied` loads the average into the
trained model for evaluation, :meth:`WeightAverage.save` gathers it whole onto rank 0, and
:meth:`WeightAverage.sharded_state_dict` gives the tensors to a ``torch.distributed.checkpoint``. Every rank
calls these (they are collectives)::

    ema = EMAWeights(model)                           # model = fully_shard(...)
    ...; ema.update(model, step)
    with ema.applied(model):
        evaluate(model)
    ema.save("ema_model.pt", model=model)             # rank 0 writes a plain state_dict
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn, update_bn

from cadence.data.batches import epoch_batches
from cadence.errors import ConfigError
from cadence.hyperparams import as_schedule
from cadence.schedules.base import Schedule
from cadence.schedules.combinators import join
from cadence.schedules.primitives import constant, cosine, linear
from cadence.weights import full_state_dict, is_sharded_module, local_tensor, resharded

__all__ = [
    "EMAWeights",
    "SWALRSchedule",
    "SWAWeights",
    "WeightAverage",
    "averaging_due",
    "ema_decay",
    "has_batch_norm",
    "sharded_state_template",
]

_ANNEAL = ("cos", "linear")


def ema_decay(decay: float, num_averaged: int, warmup: bool = True) -> float:
    """The EMA decay used for the update after ``num_averaged`` earlier ones: ``min(d, (1+n)/(10+n))``."""
    if not warmup:
        return decay
    return min(decay, (1.0 + num_averaged) / (10.0 + num_averaged))


def averaging_due(step: int, start_step: int = 0, update_every: int = 1) -> bool:
    """Whether the weights after update ``step`` (0-based) are averaged: ``step >= start_step`` and
    ``(step - start_step) % update_every == 0``."""
    return step >= start_step and (step - start_step) % update_every == 0


def has_batch_norm(model: nn.Module) -> bool:
    """True when ``model`` has batch-norm layers (whose statistics an average must recompute)."""
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def sharded_state_template(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Tensors shaped and sharded like what :meth:`WeightAverage.sharded_state_dict` returns for the sharded
    ``model``, for a ``torch.distributed.checkpoint`` to load into before the average exists (a resume)."""
    return {
        "parameters": {name: torch.zeros_like(parameter) for name, parameter in model.named_parameters()},
        "buffers": {name: buffer.detach().clone() for name, buffer in model.named_buffers()},
    }


def _average_batch_norm_over_ranks(model: nn.Module) -> None:
    """Average the batch-norm running statistics over the process group (each rank saw its own batches)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            for statistic in (module.running_mean, module.running_var):
                dist.all_reduce(statistic)
                statistic.div_(dist.get_world_size())


def _inputs_only(batches: Any):
    """The inputs of each batch of ``batches`` (epoch 0 of a loader with ``batches(epoch)``, else the
    iterable itself; :func:`cadence.data.batches.epoch_batches`): ``(inputs, ...)`` pairs or inputs."""
    for batch in epoch_batches(batches, 0):
        yield batch[0] if isinstance(batch, (list, tuple)) else batch


@dataclass(frozen=True, repr=False)
class SWALRSchedule(Schedule):
    """An LR schedule that follows ``base`` until ``start_step`` and then anneals to ``swa_lr``.

    For ``step >= start_step`` with ``t = min(1, (step - start_step) / anneal_steps)``::

        lr = swa_lr + (base(start_step) - swa_lr) · (1 + cos(π t)) / 2     (anneal="cos")
        lr = swa_lr + (base(start_step) - swa_lr) · (1 - t)                (anneal="linear")

    the same shape as ``torch.optim.swa_utils.SWALR`` but a pure function of the step. It is built from the
    schedule primitives: ``join((base, cosine(base(start_step), swa_lr, steps=anneal_steps)),
    boundaries=(start_step,))`` (``linear`` for ``anneal="linear"``, ``constant(swa_lr)`` without annealing).
    Give it to the Trainer as its ``"lr"`` schedule, or let :class:`cadence.callbacks.SWA` with ``lr=``
    register it on the run's hyperparameter pipeline.
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


class WeightAverage:
    """An :class:`~torch.optim.swa_utils.AveragedModel` of ``model`` and the rule for when to update it.

    Use :class:`SWAWeights` or :class:`EMAWeights`. ``update(model, step)`` after optimizer update ``step``
    averages when :func:`averaging_due`; ``module`` is the averaged model; ``state_dict`` /
    ``load_state_dict`` checkpoint it exactly; ``save(path)`` writes a plain ``state_dict`` of the
    architecture (loadable into a fresh model).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        start_step: int = 0,
        update_every: int = 1,
        use_buffers: bool = False,
        decay: float | None = None,
        warmup: bool = True,
    ) -> None:
        for name, value, low in (("start_step", start_step, 0), ("update_every", update_every, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{type(self).__name__} {name} must be an integer >= {low}, got {value!r}")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay=}")
        self.start_step = start_step
        self.update_every = update_every
        self.use_buffers = bool(use_buffers)
        self.decay = None if decay is None else float(decay)
        self.warmup = bool(warmup)
        #: True when ``model`` is sharded (FSDP): the average is then this rank's shards, not a module.
        self.sharded = is_sharded_module(model)
        self.averaged: AveragedModel | None = None
        if self.sharded:
            resharded(model)
            self._parameters = [local_tensor(p).detach().clone() for p in model.parameters()]
            self._buffers = [buffer.detach().clone() for buffer in model.buffers()]
        elif self.decay is None:
            self.averaged = AveragedModel(model, use_buffers=self.use_buffers)
        else:
            self.averaged = AveragedModel(model, multi_avg_fn=self._ema_average, use_buffers=self.use_buffers)
        self._count = 0  # the update count on the host: read once, not per update

    @property
    def module(self) -> nn.Module:
        """The averaged model (same architecture as the trained one); not kept for a sharded model."""
        if self.averaged is None:
            raise ConfigError(
                f"{type(self).__name__} of a sharded (FSDP) model holds this rank's shards, not a module: "
                "evaluate inside `with average.applied(model):` and write it with `average.save(path, "
                "model=model)`"
            )
        return self.averaged.module

    @property
    def num_averaged(self) -> int:
        """How many weights were averaged so far."""
        return self._count if self.averaged is None else int(self.averaged.n_averaged)

    def due(self, step: int) -> bool:
        """Whether :meth:`update` averages after update ``step``."""
        return averaging_due(step, self.start_step, self.update_every)

    def update(self, model: nn.Module, step: int) -> bool:
        """Average ``model``'s weights if update ``step`` (0-based, just done) is due; returns whether."""
        if not self.due(step):
            return False
        if self.sharded:
            self._sharded_update(model)
        elif self.decay is None:
            self.averaged.update_parameters(model)
        else:
            self._ema_update(model)
        return True

    def _ema_average(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor | int
    ) -> None:
        assert self.decay is not None
        get_ema_multi_avg_fn(ema_decay(self.decay, int(num_averaged), self.warmup))(
            averaged, current, num_averaged
        )

    def _ema_update(self, model: nn.Module) -> None:
        # AveragedModel.update_parameters reads its count tensor twice per update; this update does the
        # same arithmetic (copy first, then one lerp per device and dtype) with the count kept here.
        module = self.averaged.module
        self._average_into(
            list(zip(module.parameters(), model.parameters(), strict=True)),
            list(zip(module.buffers(), model.buffers(), strict=True)),
        )
        self.averaged.n_averaged += 1  # in place on its CPU buffer: nothing read

    def _sharded_update(self, model: nn.Module) -> None:
        # the same arithmetic as AveragedModel (SWA: running mean; EMA: lerp), on this rank's shards
        resharded(model)
        shards = [local_tensor(parameter) for parameter in model.parameters()]
        self._average_into(
            list(zip(self._parameters, shards, strict=True)),
            list(zip(self._buffers, model.buffers(), strict=True)),
        )

    def _average_into(
        self,
        parameters: list[tuple[torch.Tensor, torch.Tensor]],
        buffers: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        """Average each ``(averaged, current)`` pair in place: the first update copies, later ones apply
        SWA's running mean or EMA's lerp, one foreach call per device and dtype. Buffers are averaged with
        ``use_buffers``, else copied under EMA (SWA recomputes them with :meth:`update_bn`)."""
        pairs = parameters + buffers if self.use_buffers else parameters
        average = get_swa_multi_avg_fn() if self.decay is None else self._ema_average
        groups: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        for averaged, current in pairs:
            averaged_list, current_list = groups.setdefault((averaged.device, averaged.dtype), ([], []))
            averaged_list.append(averaged.detach())
            current_list.append(current.detach().to(averaged.device))
        with torch.no_grad():
            for averaged_list, current_list in groups.values():
                if self._count == 0:
                    torch._foreach_copy_(averaged_list, current_list)
                else:
                    average(averaged_list, current_list, self._count)
            if self.decay is not None and not self.use_buffers:
                for averaged, current in buffers:
                    averaged.detach().copy_(current.detach())
        self._count += 1

    def _averaged_tensors(self) -> list[torch.Tensor]:
        """The averaged parameters (this rank's shards when sharded), then the buffers, in module order."""
        if self.averaged is None:
            return [*self._parameters, *self._buffers]
        return [*self.averaged.module.parameters(), *self.averaged.module.buffers()]

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Load the averaged weights and buffers into ``model`` (the trained model, sharded or not) for the
        ``with`` block, and put its own back afterwards, also after an error::

            with ema.applied(model):
                evaluate(model)

        For a sharded model this is how the average is evaluated (every rank enters the block); it costs one
        more copy of this rank's shards, never a copy of the module.
        """
        resharded(model)
        targets = [*(local_tensor(p) for p in model.parameters()), *model.buffers()]
        sources = self._averaged_tensors()
        if len(targets) != len(sources):
            raise ConfigError(f"{type(self).__name__}.applied: the model is not the one that was averaged")
        with torch.no_grad():
            kept = [target.detach().clone() for target in targets]
            for target, source in zip(targets, sources, strict=True):
                target.copy_(source)
        try:
            yield model
        finally:
            resharded(model)
            with torch.no_grad():
                for target, value in zip(targets, kept, strict=True):
                    target.copy_(value)

    def update_bn(
        self,
        batches: Iterable[Any],
        device: torch.device | str | None = None,
        *,
        model: nn.Module | None = None,
    ) -> None:
        """Recompute the averaged model's batch-norm statistics over ``batches``: a loader with
        ``batches(epoch)`` (its epoch 0), a DataLoader or any iterable of ``(inputs, ...)`` batches or of
        inputs; nothing happens without batch norm or before the first update.

        A sharded average needs the trained ``model``: the statistics are computed on it with the average
        applied, each rank over its own ``batches`` (every rank must see the same number of batches: the
        forward passes gather shards), then averaged over the ranks.
        """
        if not self.num_averaged:
            return
        if self.averaged is not None:
            if has_batch_norm(self.averaged):
                update_bn(_inputs_only(batches), self.averaged, device=device)
            return
        if model is None:
            raise ConfigError(f"{type(self).__name__}.update_bn of a sharded (FSDP) model needs model=")
        if not has_batch_norm(model):
            return
        with self.applied(model):
            update_bn(_inputs_only(batches), model, device=device)
            _average_batch_norm_over_ranks(model)
            self._buffers = [buffer.detach().clone() for buffer in model.buffers()]

    def save(
        self,
        path: str | os.PathLike,
        save: Callable[[Any, Path], Any] | None = None,
        *,
        model: nn.Module | None = None,
    ) -> Path:
        """Write the averaged model's ``state_dict`` to ``path`` (``torch.save``, or ``save(obj, path)``).

        A sharded average needs the trained ``model``, and every rank must call this: the average is
        gathered whole onto rank 0, which writes the file (a plain ``state_dict`` a plain model loads).
        """
        path = Path(path)
        write = save or torch.save
        if self.averaged is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(self.module.state_dict(), path)
            return path
        if model is None:
            raise ConfigError(f"{type(self).__name__}.save of a sharded (FSDP) model needs model=")
        import torch.distributed as dist

        with self.applied(model):
            # written inside: the gathered state may hold the model's own (unsharded) buffers
            weights = full_state_dict(model)
            if dist.get_rank() == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
                write(weights, path)
        return path

    def state_dict(self) -> dict[str, Any]:
        """``{"averaged": tensors}``: the averaged parameters, buffers and the count ``n_averaged``.

        Sharded: ``{"n_averaged": count}`` only; the tensors are :meth:`sharded_state_dict`'s.
        """
        if self.averaged is None:
            return {"n_averaged": self._count}
        return {
            "averaged": {name: tensor.detach().clone() for name, tensor in self.averaged.state_dict().items()}
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.averaged is None:
            self._count = int(state_dict["n_averaged"])
            return
        self.averaged.load_state_dict(state_dict["averaged"])
        self._count = self.num_averaged

    def sharded_state_dict(self, model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
        """A sharded average's tensors as ``DTensor``s sharded like ``model``'s parameters (sharing this
        average's memory), for ``torch.distributed.checkpoint`` to save or to load into in place:
        ``{"parameters": {name: ...}, "buffers": {name: ...}}``."""
        if self.averaged is not None:
            raise ConfigError(f"{type(self).__name__}.sharded_state_dict: the average is not sharded")
        from torch.distributed.tensor import DTensor

        resharded(model)
        parameters = {}
        for (name, parameter), local in zip(model.named_parameters(), self._parameters, strict=True):
            parameters[name] = DTensor.from_local(
                local,
                parameter.device_mesh,
                parameter.placements,
                run_check=False,
                shape=parameter.shape,
                stride=parameter.stride(),
            )
        names = [name for name, _ in model.named_buffers()]
        buffers = dict(zip(names, self._buffers, strict=True))
        return {"parameters": parameters, "buffers": buffers}

    def load_sharded_state_dict(self, state_dict: dict[str, dict[str, torch.Tensor]]) -> None:
        """Take the tensors of :meth:`sharded_state_dict` (or :func:`sharded_state_template`, loaded)."""
        if self.averaged is not None:
            raise ConfigError(f"{type(self).__name__}.load_sharded_state_dict: the average is not sharded")
        parameters = list(state_dict["parameters"].values())
        buffers = list(state_dict["buffers"].values())
        if len(parameters) != len(self._parameters) or len(buffers) != len(self._buffers):
            raise ConfigError(f"{type(self).__name__}: the sharded state is not this model's")
        with torch.no_grad():
            for mine, saved in zip(self._parameters, parameters, strict=True):
                mine.copy_(local_tensor(saved))
            for mine, saved in zip(self._buffers, buffers, strict=True):
                mine.copy_(saved)


class SWAWeights(WeightAverage):
    """SWA: the equal-weight average of the weights after updates ``start_step, start_step +
    update_every, ...`` (buffers are not averaged: call :meth:`update_bn` before using it with batch norm)."""

    def __init__(self, model: nn.Module, *, start_step: int = 0, update_every: int = 1) -> None:
        super().__init__(model, start_step=start_step, update_every=update_every, use_buffers=False)


class EMAWeights(WeightAverage):
    """EMA of the weights, updated after every ``update_every``-th update from ``start_step`` on.

    ``decay`` is ``d`` in ``θ̄ ← d·θ̄ + (1-d)·θ``; ``warmup`` uses ``min(d, (1+n)/(10+n))`` for the n-th
    update; ``use_buffers`` also averages buffers such as batch-norm statistics (else they are copied).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        decay: float = 0.999,
        warmup: bool = True,
        update_every: int = 1,
        use_buffers: bool = True,
        start_step: int = 0,
    ) -> None:
        super().__init__(
            model,
            start_step=start_step,
            update_every=update_every,
            use_buffers=use_buffers,
            decay=decay,
            warmup=warmup,
        )
