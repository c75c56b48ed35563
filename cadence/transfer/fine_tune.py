"""The fine-tuning recipe: train the new head on a frozen body, then everything with discriminative LRs.

fastai's ``fine_tune`` (Howard & Gugger, "Fastai: A Layered API for Deep Learning", 2020), built from
cadence's parts and run as **one** Trainer fit, so one run directory and one resumable run:

1. ``freeze_epochs`` epochs: only the head (the last layer group) trains — normalization layers of the body
   too when ``train_bn`` — with one-cycle up to ``base_lr`` (``pct_start=0.99``: almost all warm-up);
2. ``epochs`` epochs: every group trains, with one-cycle up to ``base_lr / 2`` (``pct_start=0.3``,
   ``div_factor=5``) and discriminative LRs falling geometrically from ``base_lr / 2`` at the head to
   ``base_lr / 2 / lr_mult`` at the first group (or by ``factor`` per group, ULMFiT style).

Both phases are stages of :class:`cadence.callbacks.unfreezing.GradualUnfreezing` over param groups built
once by :func:`cadence.transfer.param_groups.discriminative_lrs`; nothing is added to the optimizer mid-run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadence.callbacks.unfreezing import GradualUnfreezing
from cadence.errors import ConfigError
from cadence.train.callback import Callback
from cadence.train.state import TrainState
from cadence.transfer.param_groups import LayerGroup, discriminative_lrs, layer_groups

__all__ = ["fine_tune", "fine_tune_groups", "fine_tune_plan"]

OPTIMIZERS = ("adamw", "adam", "sgd")


def fine_tune_groups(
    model: nn.Module,
    *,
    head: nn.Module | None = None,
    n_groups: int = 3,
    example_input: Any = None,
) -> list[LayerGroup]:
    """Layer groups for fine-tuning: ``n_groups - 1`` body groups and the head as the last group.

    ``head`` names the new part (e.g. ``model.head()`` of a :class:`~cadence.transfer.pretrained.
    PretrainedClassifier`); without it the last of ``layer_groups(model, n_groups)`` is the head.
    """
    if head is None:
        return layer_groups(model, n_groups=n_groups, example_input=example_input)
    units = layer_groups(model, example_input=example_input)
    head_ids = {id(param) for param in head.parameters()}
    body = [group for group in units if not any(id(param) in head_ids for param in group.params)]
    heads = [group for group in units if any(id(param) in head_ids for param in group.params)]
    if not heads or not body:
        raise ConfigError("fine_tune: head must be a part of the model with parameters, and not all of it")
    if n_groups < 2:
        raise ConfigError(f"fine_tune needs n_groups >= 2 (body groups + head), got {n_groups=}")
    count = min(n_groups - 1, len(body))
    base, extra = divmod(len(body), count)
    merged, start = [], 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        chunk = body[start : start + size]
        start += size
        merged.append(
            LayerGroup(
                name="+".join(group.name for group in chunk),
                modules=[module for group in chunk for module in group.modules],
                params=[param for group in chunk for param in group.params],
                names=[name for group in chunk for name in group.names],
                norm=[flag for group in chunk for flag in group.norm],
            )
        )
    head_group = LayerGroup(
        name="+".join(group.name for group in heads),
        modules=[module for group in heads for module in group.modules],
        params=[param for group in heads for param in group.params],
        names=[name for group in heads for name in group.names],
        norm=[flag for group in heads for flag in group.norm],
    )
    return [*merged, head_group]


def _pct(pct_start: float, steps: int) -> float:
    # one-cycle needs a warm-up of more than one step; very short phases get a longer warm-up fraction.
    return min(0.99, max(pct_start, 1.5 / steps))


def fine_tune_plan(
    steps_per_epoch: int,
    *,
    freeze_epochs: int = 1,
    epochs: int = 1,
    base_lr: float = 2e-3,
    momentum: tuple[float, float] | None = (0.95, 0.85),
) -> list[dict[str, Any]]:
    """The GradualUnfreezing stages of :func:`fine_tune`: the head, then all groups.

    A phase shorter than 3 steps gets a constant LR (``base_lr``, then ``base_lr / 2``) instead of one-cycle.
    """
    from cadence.schedules import one_cycle, one_cycle_momentum

    phases = []
    if freeze_epochs > 0:
        phases.append((0, freeze_epochs * steps_per_epoch, 1, base_lr, 0.99, 25.0))
    phases.append((freeze_epochs * steps_per_epoch, epochs * steps_per_epoch, "all", base_lr / 2, 0.3, 5.0))
    stages: list[dict[str, Any]] = []
    for start, steps, groups, max_lr, pct_start, div_factor in phases:
        stage: dict[str, Any] = {"at_step": start, "groups": groups, "lr": max_lr}
        if steps >= 3:
            pct = _pct(pct_start, steps)
            stage["lr"] = one_cycle(max_lr=max_lr, total_steps=steps, pct_start=pct, div_factor=div_factor)
            if momentum is not None:
                stage["momentum"] = one_cycle_momentum(
                    total_steps=steps, max_momentum=momentum[0], base_momentum=momentum[1], pct_start=pct
                )
        stages.append(stage)
    return stages


def _make_optimizer(
    optimizer: str | Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    param_groups: list[dict[str, Any]],
    lr: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    if callable(optimizer):
        return optimizer(param_groups)
    if optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)} or a callable, got {optimizer!r}")


def fine_tune(
    model: nn.Module,
    train_data: Any,
    *,
    groups: Sequence[LayerGroup] | None = None,
    head: nn.Module | None = None,
    n_groups: int = 3,
    freeze_epochs: int = 1,
    epochs: int = 1,
    base_lr: float = 2e-3,
    lr_mult: float = 100.0,
    factor: float | None = None,
    optimizer: str | Callable[[list[dict[str, Any]]], torch.optim.Optimizer] = "adamw",
    weight_decay: float = 0.01,
    weight_decay_exempt_norm_bias: bool = True,
    train_bn: bool = True,
    loss_fn: Callable[[Any, Any], torch.Tensor] = F.cross_entropy,
    eval_data: Any = None,
    callbacks: Iterable[Callback] = (),
    example_input: Any = None,
    resume: str | None = None,
    **trainer_options: Any,
) -> TrainState:
    """Fine-tune a pretrained ``model``: head on the frozen body, then all of it (see the module docstring).

    Groups come from ``groups``, or :func:`fine_tune_groups` (``head`` + ``n_groups``). ``lr_mult`` is the
    ratio between the head's and the first group's LR in phase 2 (fastai's default 100); ``factor`` instead
    divides the LR by ``factor`` per group (ULMFiT's 2.6). ``trainer_options`` go to
    :class:`cadence.train.trainer.Trainer` (``run_dir``, ``seed``, ``precision``, ``device``, ...);
    ``resume`` to its ``fit``. Returns the final :class:`TrainState`.

    Example::

        model = create_pretrained("efficientnet-lite0", num_classes=10, image_size=64)
        fine_tune(model, TensorLoader(x, y, 64), head=model.head(), freeze_epochs=1, epochs=2, base_lr=2e-3)
    """
    from cadence.train.trainer import Trainer

    if freeze_epochs < 0 or epochs < 1:
        raise ConfigError(
            f"fine_tune needs freeze_epochs >= 0 and epochs >= 1, got {freeze_epochs=}, {epochs=}"
        )
    if not base_lr > 0:
        raise ConfigError(f"base_lr must be > 0, got {base_lr=}")
    if not lr_mult >= 1:
        raise ConfigError(f"lr_mult must be >= 1, got {lr_mult=}")
    if groups is None:
        groups = fine_tune_groups(model, head=head, n_groups=n_groups, example_input=example_input)
    groups = list(groups)
    phase_two_lr = base_lr / 2
    if factor is not None:
        param_groups = discriminative_lrs(
            groups, factor=factor, lr=base_lr, weight_decay_exempt_norm_bias=weight_decay_exempt_norm_bias
        )
    else:
        param_groups = discriminative_lrs(
            groups,
            lr_range=(phase_two_lr / lr_mult, phase_two_lr),
            lr=base_lr,
            weight_decay_exempt_norm_bias=weight_decay_exempt_norm_bias,
        )
    built = _make_optimizer(optimizer, param_groups, base_lr, weight_decay)
    try:
        batches = len(train_data)
    except TypeError as error:
        message = "fine_tune needs train_data with a length (a TensorLoader or DataLoader)"
        raise ConfigError(message) from error
    steps_per_epoch = math.ceil(batches / trainer_options.get("accumulation_steps", 1))
    has_momentum = all("momentum" in g or "betas" in g for g in built.param_groups)
    stages = fine_tune_plan(
        steps_per_epoch,
        freeze_epochs=freeze_epochs,
        epochs=epochs,
        base_lr=base_lr,
        momentum=(0.95, 0.85) if has_momentum else None,
    )
    unfreezing = GradualUnfreezing(stages, groups=groups, train_bn=train_bn)
    trainer = Trainer(
        model,
        built,
        loss_fn,
        train_data,
        epochs=freeze_epochs + epochs,
        eval_data=eval_data,
        callbacks=[unfreezing, *callbacks],
        **trainer_options,
    )
    return trainer.fit(resume=resume)
