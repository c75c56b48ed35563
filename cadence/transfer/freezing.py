"""Freezing and unfreezing layer groups (transfer learning), and how freezing techniques compose.

Freezing means ``requires_grad = False`` and ``grad = None``: autograd then computes no gradient for the
parameter, and torch optimizers skip parameters whose ``grad`` is ``None`` — so a frozen parameter gets no
update at all, weight decay and momentum included (an optimizer would still decay a parameter that has a
zero gradient, so zeroing gradients is not enough). Param groups are never added or removed: create them all
up front (see :func:`cadence.transfer.param_groups.discriminative_lrs`) and freeze with these functions.

FreezeOut's plan (which group freezes when, and its LR factors) is a technique of its own in
:mod:`cadence.freezing`; it freezes with the functions here, and :func:`combine_freezing_` composes it with
gradual unfreezing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.transfer.param_groups import NORM_TYPES, LayerGroup

__all__ = [
    "FreezeRequest",
    "GroupLike",
    "combine_freezing_",
    "drop_gradients_",
    "freeze_",
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

    ``groups`` may be a :class:`~cadence.transfer.param_groups.LayerGroup`, a module, a parameter, or a list
    of any of these. With ``train_bn=True`` the parameters of normalization layers stay trainable (fastai's
    default when fine-tuning: the frozen body's batch-norm layers still adapt to the new data).
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
