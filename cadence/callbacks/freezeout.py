"""FreezeOut as a Trainer callback: progressively freeze layer groups, each with its own annealed LR.

Brock, Lim, Ritchie & Weston, "FreezeOut: Accelerate Training by Progressively Freezing Layers" (2017).
Group ``i`` of ``L`` (0 at the input) follows ``lr_i(t) = 0.5 * lr_i0 * (1 + cos(pi * t / t_i))`` for
``t = step / total_steps < t_i`` and is frozen afterwards, with ``t_i = t0 + (1 - t0) * i / (L - 1)`` (cubed
when ``cubic``) and ``lr_i0 = lr / t_i`` when ``scale_lr``. See :mod:`cadence.freezing` for the plain
functions this callback calls.

Usage::

    groups = layer_groups(model, example_input=x[:1])
    optimizer = torch.optim.SGD(freezeout_param_groups(groups), lr=0.1, momentum=0.9, nesterov=True)
    trainer = Trainer(model, optimizer, loss_fn, data, epochs=20, schedules={"lr": 0.1},
                      callbacks=[FreezeOut(groups=groups)])

The optimizer must have one param group per layer group (``freezeout_param_groups`` builds them; a
``"layer_group"`` key or an exact parameter match identifies them); anything else is a :class:`ConfigError`.
The LR is not written here: in ``on_fit_start`` the callback registers one multiplier per param group on the
run's :class:`~cadence.hyperparams.HyperparamPipeline` (``cosine(1/t_i, 0, steps=t_i · total_steps)``, see
:func:`cadence.freezing.freezeout_factor`), so group ``i`` gets ``schedule(step) · lr_scale_i ·
factor_i(step)``.
The base is the Trainer's LR schedule (give it a constant for the paper's setting), or ``lr`` when given
(which replaces the schedule). Everything is derived from ``state.step``: nothing is stored, a resumed run
continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from cadence.errors import ConfigError
from cadence.freezing import freezeout_factors, freezeout_frozen, freezeout_param_groups, freezeout_times
from cadence.schedules.primitives import constant
from cadence.train.callback import Callback
from cadence.train.state import TrainState
from cadence.transfer.freezing import combine_freezing_, optimizer_group_index
from cadence.transfer.param_groups import LayerGroup, layer_groups

__all__ = ["FreezeOut", "freezeout_param_groups"]


class FreezeOut(Callback):
    """Progressive freezing with per-group cosine-annealed LRs (see the module docstring).

    Args:
        t0: fraction of training at which the first group freezes (before cubing), in (0, 1].
        scale_lr: start group ``i`` at ``lr / t_i``.
        cubic: cube the freezing times (the paper's best setting: earlier groups freeze much earlier).
        groups: the layer groups; ``None`` takes ``layer_groups(model, n_groups=n_groups)`` at fit start.
        lr: base LR; ``None`` reads the value the Trainer applied (``state.hyperparams["lr"]``).
        n_groups: used when ``groups`` is ``None``.
    """

    shapes_training = True
    changes_trainable = True

    def __init__(
        self,
        t0: float = 0.8,
        scale_lr: bool = True,
        cubic: bool = True,
        groups: Sequence[LayerGroup] | None = None,
        *,
        lr: float | None = None,
        n_groups: int | None = None,
    ) -> None:
        if not 0 < t0 <= 1:
            raise ConfigError(f"FreezeOut t0 must be in (0, 1], got {t0=}")
        if lr is not None and not lr > 0:
            raise ConfigError(f"FreezeOut lr must be > 0 or None, got {lr=}")
        self.t0 = float(t0)
        self.scale_lr = bool(scale_lr)
        self.cubic = bool(cubic)
        self.groups = list(groups) if groups is not None else None
        self.lr = lr
        self.n_groups = n_groups
        self._group_index: list[int] | None = None
        self._frozen: list[bool] | None = None

    def times(self) -> list[float]:
        """The fraction of training at which each group freezes."""
        assert self.groups is not None
        return freezeout_times(len(self.groups), self.t0, cubic=self.cubic)

    def freeze_steps(self, total_steps: int) -> list[int]:
        """The first step at which each group is frozen (``ceil(t_i * total_steps)``)."""
        import math

        return [math.ceil(round(t * total_steps, 9)) for t in self.times()]

    def on_fit_start(self, state: TrainState) -> None:
        if self.groups is None:
            self.groups = layer_groups(state.model, n_groups=self.n_groups)
        self._group_index = optimizer_group_index(state.optimizer, self.groups)
        pipeline = state.pipeline
        if self.lr is not None:
            pipeline.replace("lr", constant(self.lr), owner="FreezeOut")
        elif pipeline.schedule("lr") is None:
            raise ConfigError(
                "FreezeOut needs a base LR: pass FreezeOut(lr=...) or give the Trainer an LR schedule"
            )
        factors = freezeout_factors(
            self.times(), state.total_steps, self._group_index, scale_lr=self.scale_lr
        )
        pipeline.multiply("lr", factors, owner="FreezeOut")
        self._frozen = None
        self._freeze(state)  # what is due at the (possibly resumed) step

    def on_batch_start(self, state: TrainState) -> None:
        self._freeze(state)

    def _freeze(self, state: TrainState) -> None:
        assert self.groups is not None
        frozen = freezeout_frozen(min(state.step, state.total_steps), state.total_steps, self.times())
        if frozen == self._frozen:
            return
        requests = getattr(state, "freezing", None)
        if requests is None:  # a loop without the shared record: this technique alone
            requests = {}
        requests["FreezeOut"] = (
            self.groups,
            [(g, False) for g, is_frozen in zip(self.groups, frozen) if is_frozen],
        )
        frozen_params = combine_freezing_(
            requests, by_requires_grad=getattr(state, "freeze_by_requires_grad", True)
        )
        if hasattr(state, "frozen"):
            state.frozen = frozen_params
        self._frozen = frozen
