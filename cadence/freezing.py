"""Freezing and unfreezing layer groups, and the FreezeOut plan.

Freezing means ``requires_grad = False`` and ``grad = None``: autograd then computes no gradient for the
parameter, and torch optimizers skip parameters whose ``grad`` is ``None`` — so a frozen parameter gets no
update at all, weight decay and momentum included (an optimizer would still decay a parameter that has a
zero gradient, so zeroing gradients is not enough). Param groups are never added or removed: create them all
up front (see :func:`cadence.param_groups.discriminative_lrs`) and freeze with these functions.

FreezeOut (Brock, Lim, Ritchie & Weston, "FreezeOut: Accelerate Training by Progressively Freezing Layers",
2017): with ``L`` layer groups and training time ``t = step / total_steps`` in [0, 1], group ``i`` (0 at the
input) stops at

    t_i = t0 + (1 - t0) * i / (L - 1)        (``cubic=True``: t_i = (t0 + (1 - t0) * i / (L - 1)) ** 3)

and until then follows its own cosine annealing ``lr_i(t) = 0.5 * lr_i0 * (1 + cos(pi * t / t_i))`` with
``lr_i0 = lr / t_i`` when ``scale_lr`` (so every group covers about the same total "LR distance"). At
``t >= t_i`` the group is frozen and leaves the backward pass: once the first groups are frozen, backward
stops at the first trainable group and the saving is real wall-clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.hyperparams import HyperparamPipeline
from cadence.param_groups import NORM_TYPES, LayerGroup, discriminative_lrs, layer_groups
from cadence.schedules.base import Schedule
from cadence.schedules.primitives import cosine

__all__ = [
    "FreezeRequest",
    "apply_freezeout",
    "combine_freezing_",
    "drop_gradients_",
    "freeze_",
    "freezeout_factor",
    "freezeout_factors",
    "freezeout_frozen",
    "freezeout_lr",
    "freezeout_param_groups",
    "freezeout_times",
    "optimizer_group_index",
    "set_norm_eval_",
    "set_trainable_",
    "unfreeze_",
]

GroupLike = LayerGroup | nn.Module | nn.Parameter | Sequence[nn.Parameter]


def _flatten(groups: GroupLike | Iterable[GroupLike]) -> list[tuple[nn.Parameter, bool]]:
    """(parameter, is_norm_parameter) for every parameter in ``groups``, each once."""
    if isinstance(groups, (LayerGroup, nn.Module, nn.Parameter)):
        groups = [groups]
    pairs: list[tuple[nn.Parameter, bool]] = []
    seen: set[int] = set()

    def add(param: nn.Parameter, is_norm: bool) -> None:
        if id(param) not in seen:
            seen.add(id(param))
            pairs.append((param, is_norm))

    for group in groups:
        if isinstance(group, LayerGroup):
            for param, is_norm in zip(group.params, group.norm):
                add(param, is_norm)
        elif isinstance(group, nn.Module):
            norm_ids = {
                id(p)
                for m in group.modules()
                if isinstance(m, NORM_TYPES)
                for p in m.parameters(recurse=False)
            }
            for param in group.parameters():
                add(param, id(param) in norm_ids)
        elif isinstance(group, torch.Tensor):
            add(group, False)
        else:
            for param in group:
                if not isinstance(param, torch.Tensor):
                    raise TypeError(
                        f"expected layer groups, modules or parameters, got {type(param).__name__}"
                    )
                add(param, False)
    return pairs


def freeze_(groups: GroupLike | Iterable[GroupLike], *, train_bn: bool = False) -> None:
    """Freeze ``groups`` in place: ``requires_grad = False`` and ``grad = None`` for their parameters.

    ``groups`` may be a :class:`~cadence.param_groups.LayerGroup`, a module, a parameter, or a list of any of
    these. With ``train_bn=True`` the parameters of normalization layers stay trainable (fastai's default
    when fine-tuning: the frozen body's batch-norm layers still adapt to the new data).
    """
    for param, is_norm in _flatten(groups):
        if train_bn and is_norm:
            param.requires_grad_(True)
            continue
        param.requires_grad_(False)
        param.grad = None


def unfreeze_(groups: GroupLike | Iterable[GroupLike], *, train_bn: bool = True) -> None:
    """Make every parameter of ``groups`` trainable again (``requires_grad = True``).

    ``train_bn=False`` leaves normalization-layer parameters frozen (and their gradients ``None``).
    """
    for param, is_norm in _flatten(groups):
        if is_norm and not train_bn:
            param.requires_grad_(False)
            param.grad = None
        else:
            param.requires_grad_(True)


def set_trainable_(groups: Sequence[GroupLike], trainable: Iterable[int], *, train_bn: bool = True) -> None:
    """Make exactly the groups whose indices are in ``trainable`` trainable and freeze the others.

    With ``train_bn`` the normalization layers of frozen groups stay trainable, as in :func:`freeze_`.
    """
    keep = set(trainable)
    for index, group in enumerate(groups):
        if index in keep:
            unfreeze_(group)
        else:
            freeze_(group, train_bn=train_bn)


#: What one technique asks for: (the groups it manages, the groups it freezes now with their ``train_bn``).
FreezeRequest = tuple[Sequence[GroupLike], Sequence[tuple[GroupLike, bool]]]


def combine_freezing_(
    requests: Mapping[str, FreezeRequest], *, by_requires_grad: bool = True
) -> list[torch.Tensor]:
    """Apply several techniques' freezing at once: a parameter trains iff no technique freezes it.

    ``requests`` maps a technique's name to what it manages and what it freezes at this step (see
    :data:`FreezeRequest`); every managed parameter frozen by some request gets ``requires_grad = False``
    and ``grad = None``, every other managed one ``requires_grad = True``. The result depends on the
    current requests only, not on the order in which the techniques changed them, so FreezeOut and
    gradual unfreezing compose and a resumed run freezes exactly what the uninterrupted one did.

    Returns the frozen parameters. With ``by_requires_grad=False`` (how the Trainer freezes under
    ``torch.compile``) every managed parameter keeps ``requires_grad = True`` and the frozen ones only get
    ``grad = None``: the caller drops their gradients again before each update (:func:`drop_gradients_`).
    Changing ``requires_grad`` changes the compiled graph (its guards), so every freezing stage would
    recompile it; this way the graph stays the same, and backward still computes the frozen layers' gradients
    (the wall-clock saving of skipping them is lost; see docs/freezeout.md).
    """
    managed: dict[int, torch.Tensor] = {}
    frozen: set[int] = set()
    for groups, freezes in requests.values():
        for param, _ in _flatten(list(groups)):
            managed[id(param)] = param
        for group, train_bn in freezes:
            frozen.update(id(param) for param, is_norm in _flatten(group) if not (train_bn and is_norm))
    for key, param in managed.items():
        if key in frozen:
            param.requires_grad_(not by_requires_grad)
            param.grad = None
        else:
            param.requires_grad_(True)
    return [param for key, param in managed.items() if key in frozen]


def drop_gradients_(params: Iterable[torch.Tensor]) -> None:
    """Set the gradient of every parameter in ``params`` to None, so that the optimizer skips it entirely
    (no update, no weight decay, no momentum, its state untouched)."""
    for param in params:
        param.grad = None


def set_norm_eval_(groups: Sequence[GroupLike]) -> None:
    """Put the normalization layers of ``groups`` in eval mode (running statistics frozen, used as is).

    fastai does this for a frozen body when ``train_bn=False``. ``model.train()`` undoes it, so a training
    loop calls this after switching to train mode (GradualUnfreezing does, before every batch).
    """
    for group in groups:
        modules = (
            group.norm_modules()
            if isinstance(group, LayerGroup)
            else (
                [m for m in group.modules() if isinstance(m, NORM_TYPES)]
                if isinstance(group, nn.Module)
                else []
            )
        )
        for module in modules:
            module.eval()


# --------------------------------------------------------------------------------------------------------
# FreezeOut plan: pure functions of (step, total_steps).


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


def optimizer_group_index(optimizer: torch.optim.Optimizer, groups: Sequence[GroupLike]) -> list[int]:
    """For each optimizer param group, the layer group it belongs to.

    Uses the ``"layer_group"`` key written by :func:`discriminative_lrs` / :func:`freezeout_param_groups`;
    otherwise matches parameters. Raises :class:`ConfigError` when an optimizer group mixes layer groups,
    because then a per-group LR cannot be written.
    """
    if all("layer_group" in group for group in optimizer.param_groups):
        indices = [int(group["layer_group"]) for group in optimizer.param_groups]
        if any(not 0 <= index < len(groups) for index in indices):
            raise ConfigError(
                f"the optimizer's 'layer_group' keys {sorted(set(indices))} do not fit "
                f"{len(groups)} layer groups"
            )
        return indices
    owner = {id(param): index for index, group in enumerate(groups) for param, _ in _flatten(group)}
    indices = []
    for position, group in enumerate(optimizer.param_groups):
        owners = {owner.get(id(param)) for param in group["params"]}
        if len(owners) != 1 or None in owners:
            raise ConfigError(
                f"optimizer param group {position} does not correspond to one layer group; build the "
                "optimizer from freezeout_param_groups(model) (or discriminative_lrs(layer_groups(model))) "
                "so that each param group holds the parameters of one layer group"
            )
        indices.append(owners.pop())
    return indices


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
    groups: Sequence[GroupLike],
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
            freeze_(group, train_bn=False)
        else:
            unfreeze_(group)
    if group_index is None:
        group_index = optimizer_group_index(optimizer, groups)
    pipeline = HyperparamPipeline({"lr": lr})
    pipeline.multiply(
        "lr", freezeout_factors(times, total_steps, group_index, scale_lr=scale_lr), owner="FreezeOut"
    )
    pipeline.apply(optimizer, step)
    return frozen
