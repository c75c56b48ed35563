"""Optimizers by name: ``create("sgd", model, lr=0.1, momentum=0.9, nesterov=True)``.

Names: ``sgd`` (momentum, nesterov), ``adam``, ``adamw``, ``rmsprop``, ``adagrad`` (the torch.optim classes).
The learning rate given here is only the starting value: a schedule applied with
:func:`cadence.set_hyperparams` overwrites it before every step.

``sgd``, ``adam`` and ``adamw`` are built with ``fused=True`` when their parameters train on a CUDA device
(``device=``, default: where the parameters are now), unless ``fused`` or ``foreach`` is given: one kernel
per step instead of a loop over tensors, and a fused optimizer applies the fp16 loss scale itself, so
``GradScaler.step`` needs no host read (see docs/mixed_precision.md). Elsewhere torch's default is kept
(on CPU its fused kernels give other rounding than the plain loops that runs are compared with).

``no_decay_norm_bias=True`` exempts biases and normalization-layer parameters from weight decay, as is
common practice since Goyal et al. 2017 ("Accurate, Large Minibatch SGD", §5.1 of the ResNet recipes) and
in transformer training: each param group is split in two, and the exempt half gets ``weight_decay=0`` and
``weight_decay_scale=0`` (so a weight-decay *schedule* written by set_hyperparams keeps it at 0 too).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError

__all__ = ["FUSED_BY_DEFAULT", "OPTIMIZERS", "available_optimizers", "create", "split_no_decay"]

#: name -> (class, default learning rate). SGD's 0.01 is Keras' default, used by the cyclical-LR tutorial.
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], float]] = {
    "sgd": (torch.optim.SGD, 0.01),
    "adam": (torch.optim.Adam, 1e-3),
    "adamw": (torch.optim.AdamW, 1e-3),
    "rmsprop": (torch.optim.RMSprop, 1e-2),
    "adagrad": (torch.optim.Adagrad, 1e-2),
}

#: Optimizers built with ``fused=True`` by default on CUDA.
FUSED_BY_DEFAULT = ("sgd", "adam", "adamw")

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def available_optimizers() -> list[str]:
    """Names accepted by :func:`create`."""
    return sorted(OPTIMIZERS)


def _exempt_ids(model: nn.Module) -> set[int]:
    """ids of biases and of parameters owned by normalization layers."""
    exempt: set[int] = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if isinstance(module, _NORM_TYPES) or name == "bias" or name.endswith("_bias"):
                exempt.add(id(parameter))
    return exempt


def split_no_decay(groups: list[dict[str, Any]], exempt: set[int] | None = None) -> list[dict[str, Any]]:
    """Split every param group into a decayed part and an exempt part (``weight_decay_scale = 0``).

    ``exempt`` holds ``id()`` s of exempt parameters (from the model); without it, 1-dimensional parameters
    (biases, norm scales and shifts) are exempt. Other group keys (``lr_scale``, ...) are kept on both
    parts; empty parts are dropped. Groups are created once, up front, never during training.
    """
    result: list[dict[str, Any]] = []
    for group in groups:
        parameters = list(group["params"])

        def is_exempt(parameter: torch.Tensor) -> bool:
            return id(parameter) in exempt if exempt is not None else parameter.ndim <= 1

        decayed = [p for p in parameters if not is_exempt(p)]
        free = [p for p in parameters if is_exempt(p)]
        if decayed:
            result.append({**group, "params": decayed})
        if free:
            result.append({**group, "params": free, "weight_decay": 0.0, "weight_decay_scale": 0.0})
    return result


def create(
    name: str,
    model_or_groups: nn.Module | Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    *,
    no_decay_norm_bias: bool = False,
    device: str | torch.device | None = None,
    **options: Any,
) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over a model's trainable parameters or explicit param groups.

    ``options`` are the torch optimizer's keyword arguments (``lr``, ``momentum``, ``nesterov``,
    ``weight_decay``, ``betas``, ``eps``, ...); ``lr`` defaults to 0.01 for SGD/RMSprop/Adagrad and 1e-3
    for Adam/AdamW. ``device`` is where the parameters will train, for the fused default above. Unknown
    names or options raise ConfigError listing the valid ones.
    """
    if name not in OPTIMIZERS:
        close = difflib.get_close_matches(name, list(OPTIMIZERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown optimizer {name!r}{hint}; choose one of: {', '.join(OPTIMIZERS)}")
    optimizer_class, default_lr = OPTIMIZERS[name]
    valid = [
        parameter
        for parameter in inspect.signature(optimizer_class.__init__).parameters
        if parameter not in ("self", "params")
    ]
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, [*valid, "no_decay_norm_bias"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown option {key!r} for optimizer {name!r}{hint}; "
                f"valid options: {', '.join([*valid, 'no_decay_norm_bias'])}"
            )
    options.setdefault("lr", default_lr)
    exempt: set[int] | None = None
    if isinstance(model_or_groups, nn.Module):
        exempt = _exempt_ids(model_or_groups)
        items: list[Any] = [p for p in model_or_groups.parameters() if p.requires_grad]
    else:
        items = list(model_or_groups)
    groups = [dict(item) for item in items] if items and isinstance(items[0], dict) else [{"params": items}]
    if no_decay_norm_bias:
        groups = split_no_decay(groups, exempt)
    if not any(list(group["params"]) for group in groups):
        raise ConfigError(f"optimizer {name!r} got no trainable parameters")
    if name in FUSED_BY_DEFAULT and "fused" not in options and "foreach" not in options:
        first = next((parameter for group in groups for parameter in group["params"]), None)
        where = device if device is not None else (first.device if first is not None else "cpu")
        if torch.device(where).type == "cuda":
            options["fused"] = True
    try:
        return optimizer_class(groups, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"optimizer {name!r}: {error}") from error
