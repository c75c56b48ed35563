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
The base LR is ``lr`` when given, otherwise the value the Trainer's LR schedule applied at the step (give it a
constant). Everything is derived from ``state.step``: nothing is stored, a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from cadence.errors import ConfigError
from cadence.freezing import apply_freezeout, freezeout_param_groups, freezeout_times, optimizer_group_index
from cadence.param_groups import LayerGroup, layer_groups
from cadence.train.callback import Callback
from cadence.train.state import TrainState

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
        # Freeze what is due at the (possibly resumed) step now; LRs are written once the step's base LR is
        # known, in on_batch_start (the Trainer applies its schedules just before that hook).
        self._apply(state, base=0.0)

    def on_batch_start(self, state: TrainState) -> None:
        self._apply(state, base=self._base_lr(state))

    def on_after_backward(self, state: TrainState) -> None:
        # Written again after backward so that it wins over a schedule a loop applies after on_batch_start.
        self._apply(state, base=self._base_lr(state))

    def _base_lr(self, state: TrainState) -> float:
        if self.lr is not None:
            return self.lr
        if "lr" not in state.hyperparams:
            raise ConfigError(
                "FreezeOut needs a base LR: pass FreezeOut(lr=...) or give the Trainer an LR schedule"
            )
        return float(state.hyperparams["lr"])

    def _apply(self, state: TrainState, base: float) -> None:
        assert self.groups is not None
        apply_freezeout(
            state.optimizer,
            self.groups,
            min(state.step, state.total_steps),
            state.total_steps,
            base,
            t0=self.t0,
            scale_lr=self.scale_lr,
            cubic=self.cubic,
            group_index=self._group_index,
        )
