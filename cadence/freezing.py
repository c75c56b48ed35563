"""The FreezeOut plan: which layer group freezes when, and its LR factors until then.

FreezeOut (Brock, Lim, Ritchie & Weston, "FreezeOut: Accelerate Training by Progressively Freezing Layers",
2017): with ``L`` layer groups and training time ``t = step / total_steps`` in [0, 1], group ``i`` (0 at the
input) stops at

    t_i = t0 + (1 - t0) * i / (L - 1)        (``cubic=True``: t_i = (t0 + (1 - t0) * i / (L - 1)) ** 3)

and until then follows its own cosine annealing ``lr_i(t) = 0.5 * lr_i0 * (1 + cos(pi * t / t_i))`` with
``lr_i0 = lr / t_i`` when ``scale_lr`` (so every group covers about the same total "LR distance"). At
``t >= t_i`` the group is frozen and leaves the backward pass: once the first groups are frozen, backward
stops at the first trainable group and the saving is real wall-clock.

FreezeOut is a technique of its own (it speeds up training from scratch), not transfer learning, so its plan
lives here; it freezes with the layer-group helpers of :mod:`cadence.transfer.freezing` and builds its
param groups with :mod:`cadence.transfer.param_groups`. Those helpers (``freeze_``, ``unfreeze_``,
``set_trainable_``, ``combine_freezing_``, ...) used to be defined here too: importing them from
``cadence.freezing`` still works and issues a ``DeprecationWarning`` naming their new home.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.hyperparams import HyperparamPipeline
from cadence.schedules.base import Schedule
from cadence.schedules.primitives import cosine
from cadence.transfer import freezing as _moved
from cadence.transfer.param_groups import LayerGroup, discriminative_lrs, layer_groups

__all__ = [
    "apply_freezeout",
    "freezeout_factor",
    "freezeout_factors",
    "freezeout_frozen",
    "freezeout_lr",
    "freezeout_param_groups",
    "freezeout_times",
]

#: Names that moved to :mod:`cadence.transfer.freezing`; still reachable here, with a DeprecationWarning.
MOVED = frozenset(_moved.__all__)


def __getattr__(name: str) -> Any:
    if name in MOVED:
        warnings.warn(
            f"cadence.freezing.{name} is deprecated: import from cadence.transfer.freezing",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_moved, name)
    raise AttributeError(f"module 'cadence.freezing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *MOVED})


def freezeout_times(n_groups: int, t0: float = 0.8, *, cubic: bool = True) -> list[float]:
    """Fraction of training at which each of ``n_groups`` groups freezes (input group first).

    ``t_i = t0 + (1 - t0) * i / (L - 1)``, cubed when ``cubic``; the last group always ends at 1.0.
    Example: ``freezeout_times(3, 0.5, cubic=False) == [0.5, 0.75, 1.0]``.
    """
    if not isinstance(n_groups, int) or n_groups < 1:
        raise ConfigError(f"FreezeOut needs at least one layer group, got {n_groups=}")
    if not 0 < t0 <= 1:
        raise ConfigError(f"t0 must be in (0, 1], got {t0=}")
    times = []
    for index in range(n_groups):
        t = 1.0 if n_groups == 1 else t0 + (1 - t0) * index / (n_groups - 1)
        times.append(t**3 if cubic else t)
    return times


def freezeout_factor(t_i: float, total_steps: int, *, scale_lr: bool = True) -> Schedule:
    """The LR multiplier of a group that freezes at ``t_i``: ``cosine(1 / t_i, 0, steps=t_i · total_steps)``
    (``start = 1`` without ``scale_lr``), i.e. ``0.5 · (1 / t_i) · (1 + cos(π · step / (t_i · T)))`` until the
    group freezes and 0 from then on. The registered FreezeOut modifier of :mod:`cadence.hyperparams`."""
    if not 0 < t_i <= 1:
        raise ConfigError(f"FreezeOut t_i must be in (0, 1], got {t_i=}")
    return cosine(1.0 / t_i if scale_lr else 1.0, 0.0, steps=t_i * total_steps)


def freezeout_factors(
    times: Sequence[float], total_steps: int, group_index: Sequence[int], *, scale_lr: bool = True
) -> list[Schedule]:
    """One FreezeOut multiplier per optimizer param group (``group_index[i]``: its layer group)."""
    by_layer = [freezeout_factor(t_i, total_steps, scale_lr=scale_lr) for t_i in times]
    return [by_layer[index] for index in group_index]


def freezeout_lr(step: int, total_steps: int, t_i: float, lr: float, *, scale_lr: bool = True) -> float:
    """Learning rate of a group that freezes at ``t_i`` at ``step`` of ``total_steps``:
    ``lr · freezeout_factor(t_i, total_steps)(step)``.

    ``0.5 * lr_i0 * (1 + cos(pi * t / t_i))`` for ``t = step / total_steps < t_i`` and 0 afterwards, with
    ``lr_i0 = lr / t_i`` if ``scale_lr`` else ``lr``.
    """
    return lr * freezeout_factor(t_i, total_steps, scale_lr=scale_lr)(step)


def freezeout_frozen(step: int, total_steps: int, times: Sequence[float]) -> list[bool]:
    """Per layer group, whether FreezeOut has frozen it at ``step``."""
    return [step / total_steps >= t_i for t_i in times]


def freezeout_param_groups(
    model_or_groups: nn.Module | Sequence[LayerGroup],
    *,
    n_groups: int | None = None,
    example_input: Any = None,
    expand_sequential: bool = False,
    weight_decay_exempt_norm_bias: bool = False,
) -> list[dict[str, Any]]:
    """Optimizer param groups, one per layer group (``"layer_group": i``, ``"lr_scale": 1.0``), to pass to the
    optimizer used with :class:`cadence.callbacks.freezeout.FreezeOut` or :func:`apply_freezeout`."""
    groups = (
        layer_groups(
            model_or_groups,
            n_groups=n_groups,
            example_input=example_input,
            expand_sequential=expand_sequential,
        )
        if isinstance(model_or_groups, nn.Module)
        else list(model_or_groups)
    )
    return discriminative_lrs(groups, factor=1.0, weight_decay_exempt_norm_bias=weight_decay_exempt_norm_bias)


def apply_freezeout(
    optimizer: torch.optim.Optimizer,
    groups: Sequence[_moved.GroupLike],
    step: int,
    total_steps: int,
    lr: float,
    *,
    t0: float = 0.8,
    scale_lr: bool = True,
    cubic: bool = True,
    group_index: Sequence[int] | None = None,
) -> list[bool]:
    """Apply FreezeOut for ``step``: write each param group's LR and freeze the groups whose time is over.

    Call it before the forward pass of every step (it is cheap and idempotent), e.g. in a plain loop::

        optimizer = torch.optim.SGD(freezeout_param_groups(groups), lr=0.1, momentum=0.9)
        for step, (x, y) in enumerate(batches):
            apply_freezeout(optimizer, groups, step, total_steps, lr=0.1)
            loss = loss_fn(model(x), y); optimizer.zero_grad(); loss.backward(); optimizer.step()

    The LR written (by :class:`cadence.hyperparams.HyperparamPipeline`) is ``lr · group["lr_scale"] ·
    freezeout_factor(t_i, total_steps)(step)``. Returns, per layer group, whether it
    is frozen at this step. Frozen groups are frozen entirely (batch-norm parameters included) so that
    backward really stops; groups not yet due are made trainable, so the result depends on ``step`` only.
    """
    times = freezeout_times(len(groups), t0, cubic=cubic)
    frozen = freezeout_frozen(step, total_steps, times)
    for group, is_frozen in zip(groups, frozen):
        if is_frozen:
            _moved.freeze_(group, train_bn=False)
        else:
            _moved.unfreeze_(group)
    if group_index is None:
        group_index = _moved.optimizer_group_index(optimizer, groups)
    pipeline = HyperparamPipeline({"lr": lr})
    pipeline.multiply(
        "lr", freezeout_factors(times, total_steps, group_index, scale_lr=scale_lr), owner="FreezeOut"
    )
    pipeline.apply(optimizer, step)
    return frozen
