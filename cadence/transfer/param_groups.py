"""Layer groups and discriminative (per-group) learning rates.

A *layer group* is a contiguous slice of a network, from the input side to the output side. Transfer learning
(ULMFiT, fastai) trains groups near the input with smaller learning rates than groups near the output, freezes
and unfreezes whole groups, and FreezeOut anneals and freezes them one after the other. Everything here is a
plain function usable in a hand-written loop::

    groups = layer_groups(model, n_groups=3, example_input=x[:2])
    optimizer = torch.optim.AdamW(discriminative_lrs(groups, factor=2.6, lr=1e-3))
    ...
    set_hyperparams(optimizer, step, lr=schedule)   # lr * group["lr_scale"] per group

Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification" (2018), section 3.2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError

__all__ = ["NORM_TYPES", "LayerGroup", "discriminative_lrs", "layer_groups", "unit_modules"]

#: Module types treated as normalization layers (no weight decay when exempted; kept trainable by train_bn).
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
if hasattr(nn, "RMSNorm"):
    NORM_TYPES = (*NORM_TYPES, nn.RMSNorm)


@dataclass(eq=False)
class LayerGroup:
    """A contiguous slice of a model: its modules and the parameters it owns.

    ``params`` holds each parameter once; a parameter shared with an earlier group (tied weights) is owned by
    the earlier group only. ``names`` are the parameters' qualified names in the model and ``norm`` flags the
    parameters that belong to a normalization layer.
    """

    name: str
    modules: list[nn.Module]
    params: list[nn.Parameter] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    norm: list[bool] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        """The parameters this group owns (each once)."""
        return list(self.params)

    def norm_modules(self) -> list[nn.Module]:
        """The normalization layers inside this group."""
        return [sub for module in self.modules for sub in module.modules() if isinstance(sub, NORM_TYPES)]

    def __repr__(self) -> str:
        count = sum(p.numel() for p in self.params)
        return f"LayerGroup(name={self.name!r}, tensors={len(self.params)}, parameters={count})"


def unit_modules(model: nn.Module, *, expand_sequential: bool = False) -> list[tuple[str, nn.Module]]:
    """The candidate units of ``model`` in registration order: its top-level children, with ``ModuleList``
    and ``ModuleDict`` containers (which never run themselves) replaced by their items, recursively; with
    ``expand_sequential`` also ``nn.Sequential`` children (a finer split, e.g. one group per layer)."""
    containers: tuple[type[nn.Module], ...] = (nn.ModuleList, nn.ModuleDict)
    if expand_sequential:
        containers = (*containers, nn.Sequential)

    def expand(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        if isinstance(module, containers):
            units: list[tuple[str, nn.Module]] = []
            for child_name, child in module.named_children():
                units.extend(expand(f"{prefix}.{child_name}", child))
            return units
        return [(prefix, module)]

    units: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        units.extend(expand(name, child))
    return units


def _forward_order(model: nn.Module, units: list[tuple[str, nn.Module]], example_input: Any) -> list[int]:
    """Indices of ``units`` in the order they first start running in one forward pass of ``example_input``.

    The pass runs in eval mode under ``torch.no_grad()`` (no batch-norm statistics change) and the model's
    train/eval modes are restored afterwards. Units that did not run keep their registration order, after
    the ones that ran.
    """
    order: list[int] = []
    seen: set[int] = set()
    handles = []

    def make_hook(index: int):
        def hook(module: nn.Module, args: Any) -> None:
            if index not in seen:
                seen.add(index)
                order.append(index)

        return hook

    for index, (_, module) in enumerate(units):
        handles.append(module.register_forward_pre_hook(make_hook(index)))
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(example_input, tuple):
                model(*example_input)
            elif isinstance(example_input, dict):
                model(**example_input)
            else:
                model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    return order + [index for index in range(len(units)) if index not in seen]


def _partition(count: int, n_groups: int) -> list[range]:
    """Split ``range(count)`` into ``n_groups`` contiguous chunks whose sizes differ by at most one
    (like ``numpy.array_split``: the first chunks get the extra item)."""
    base, extra = divmod(count, n_groups)
    chunks, start = [], 0
    for index in range(n_groups):
        size = base + (1 if index < extra else 0)
        chunks.append(range(start, start + size))
        start += size
    return chunks


def layer_groups(
    model: nn.Module,
    n_groups: int | None = None,
    split: Sequence[str] | Callable[[nn.Module], Sequence[Sequence[nn.Module]]] | None = None,
    *,
    example_input: Any = None,
    expand_sequential: bool = False,
) -> list[LayerGroup]:
    """Split ``model`` into layer groups ordered from the input to the output.

    Units are the model's top-level children (``ModuleList``/``ModuleDict`` containers are replaced by their
    items). With ``example_input`` (a tensor, a tuple of positional arguments or a dict of keyword
    arguments) the units are ordered by the order they start running in one forward pass — run in eval mode
    without gradients, so nothing in the model changes. Without it, **registration order** is used, which is
    the forward order for ``nn.Sequential`` and for most models, but not for a model whose ``__init__``
    creates its layers in a different order than ``forward`` uses them: pass ``example_input`` there.

    ``expand_sequential=True`` replaces ``nn.Sequential`` children by their items too (recursively), for a
    finer split such as FreezeOut's one group per layer. Units without parameters are dropped. Then:

    - ``n_groups=None``: one group per unit;
    - ``n_groups=k``: the units are cut into ``k`` contiguous groups of (nearly) equal unit counts;
    - ``split``: either a list of unit names at which a new group starts (the first group always starts at
      the first unit), e.g. ``["layer3", "fc"]`` gives three groups; or a callable ``model -> list of module
      lists`` returning the groups directly (in input-to-output order).

    Every parameter belongs to exactly one group: a parameter shared between units (tied weights) goes to
    the first group that uses it, and parameters registered directly on ``model`` itself (not inside a
    child, e.g. a positional embedding) go to the first group.

    Example::

        groups = layer_groups(model, n_groups=3, example_input=torch.zeros(1, 1, 28, 28))
        [g.name for g in groups]   # ['conv1+bn1', 'conv2+bn2', 'fc']
    """
    if n_groups is not None and (not isinstance(n_groups, int) or isinstance(n_groups, bool) or n_groups < 1):
        raise ConfigError(f"n_groups must be a positive integer or None, got {n_groups=}")
    if n_groups is not None and split is not None:
        raise ConfigError("pass either n_groups or split to layer_groups, not both")

    if callable(split):
        module_groups = [list(group) for group in split(model)]
        names = [f"group{index}" for index in range(len(module_groups))]
    else:
        units = unit_modules(model, expand_sequential=expand_sequential)
        if example_input is not None:
            units = [units[index] for index in _forward_order(model, units, example_input)]
        units = [(name, module) for name, module in units if any(True for _ in module.parameters())]
        if not units:
            own = list(model.parameters(recurse=False))
            if not own:
                raise ConfigError("layer_groups: the model has no parameters")
            units = [("self", nn.ParameterList())]  # placeholder: root parameters are added below
        if split is not None:
            unit_names = [name for name, _ in units]
            unknown = [name for name in split if name not in unit_names]
            if unknown:
                raise ConfigError(f"split names {unknown} are not units of the model; units are {unit_names}")
            starts = sorted({0, *(unit_names.index(name) for name in split)})
            chunks = [range(start, end) for start, end in zip(starts, [*starts[1:], len(units)])]
        elif n_groups is not None:
            if n_groups > len(units):
                raise ConfigError(
                    f"n_groups={n_groups} is more than the {len(units)} units with parameters "
                    f"({[name for name, _ in units]}); use at most {len(units)}"
                )
            chunks = _partition(len(units), n_groups)
        else:
            chunks = [range(index, index + 1) for index in range(len(units))]
        module_groups = [[units[index][1] for index in chunk] for chunk in chunks]
        names = ["+".join(units[index][0] for index in chunk) for chunk in chunks]

    qualified = {id(param): name for name, param in model.named_parameters(remove_duplicate=True)}
    norm_ids = {
        id(param)
        for module in model.modules()
        if isinstance(module, NORM_TYPES)
        for param in module.parameters(recurse=False)
    }
    groups: list[LayerGroup] = []
    seen: set[int] = set()
    for name, modules in zip(names, module_groups):
        group = LayerGroup(name=name, modules=[m for m in modules if not isinstance(m, nn.ParameterList)])
        candidates = list(model.parameters(recurse=False)) if not groups else []
        for module in modules:
            candidates.extend(module.parameters())
        for param in candidates:
            if id(param) in seen:
                continue
            seen.add(id(param))
            group.params.append(param)
            group.names.append(qualified.get(id(param), "?"))
            group.norm.append(id(param) in norm_ids)
        groups.append(group)
    missing = [name for name, param in model.named_parameters() if id(param) not in seen]
    if missing:
        more = "..." if len(missing) > 5 else ""
        raise ConfigError(f"split left parameters without a group: {missing[:5]}{more}")
    return [group for group in groups if group.params]


def _group_params(group: LayerGroup | Sequence[nn.Parameter] | nn.Module) -> tuple[list, list[bool]]:
    """Parameters of a group and, per parameter, whether it is a norm-layer parameter or a bias."""
    if isinstance(group, LayerGroup):
        flags = [
            is_norm or name.rsplit(".", 1)[-1] == "bias" for name, is_norm in zip(group.names, group.norm)
        ]
        return list(group.params), flags
    if isinstance(group, nn.Module):
        norm_ids = {
            id(p) for m in group.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)
        }
        pairs = list(group.named_parameters())
        return [p for _, p in pairs], [id(p) in norm_ids or n.rsplit(".", 1)[-1] == "bias" for n, p in pairs]
    params = list(group)
    return params, [param.ndim <= 1 for param in params]


def discriminative_lrs(
    groups: Sequence[LayerGroup | Sequence[nn.Parameter] | nn.Module],
    *,
    factor: float | None = 2.6,
    lr_range: tuple[float, float] | None = None,
    lr: float | None = None,
    weight_decay_exempt_norm_bias: bool = False,
) -> list[dict[str, Any]]:
    """Optimizer param groups whose ``lr_scale`` falls geometrically from the output towards the input.

    With ``L`` groups (index ``i = 0`` nearest the input), the last group gets ``lr_scale = 1`` and

    - ``factor=f`` (ULMFiT uses 2.6): ``lr_scale_i = f ** -(L - 1 - i)``;
    - ``lr_range=(low, high)`` (like fastai's ``slice(low, high)``): ``lr_scale_i = (low / high) **
      ((L - 1 - i) / (L - 1))``, so a schedule that peaks at ``high`` gives the first group ``low``.

    :func:`cadence.hyperparams.set_hyperparams` multiplies the scheduled LR by ``lr_scale``. ``lr`` (default
    ``high`` with ``lr_range``) also writes ``"lr": lr * lr_scale`` so a plain optimizer works without
    ``set_hyperparams``. Each dict carries ``"layer_group": i`` (used by FreezeOut and GradualUnfreezing) and
    ``"name"``. With ``weight_decay_exempt_norm_bias`` every group is split in two: its norm-layer parameters
    and biases go to a dict with ``"weight_decay": 0.0`` and ``"weight_decay_scale": 0.0``.

    Example (3 groups, factor 2.6): lr_scale = [1/6.76, 1/2.6, 1.0].
    """
    if not groups:
        raise ConfigError("discriminative_lrs needs at least one group, got an empty list")
    count = len(groups)
    if lr_range is not None:
        if len(lr_range) != 2 or not 0 < lr_range[0] <= lr_range[1]:
            raise ConfigError(f"lr_range must be (low, high) with 0 < low <= high, got {lr_range=}")
        low, high = float(lr_range[0]), float(lr_range[1])
        scales = [
            1.0 if count == 1 else (low / high) ** ((count - 1 - i) / (count - 1)) for i in range(count)
        ]
        if lr is None:
            lr = high
    else:
        if factor is None or not factor >= 1:
            raise ConfigError(f"factor must be a number >= 1 (2.6 in ULMFiT), got {factor=}")
        scales = [float(factor) ** -(count - 1 - i) for i in range(count)]

    result: list[dict[str, Any]] = []
    for index, (group, scale) in enumerate(zip(groups, scales)):
        params, exempt = _group_params(group)
        name = group.name if isinstance(group, LayerGroup) else f"group{index}"
        parts = [(params, False)]
        if weight_decay_exempt_norm_bias:
            parts = [
                ([p for p, e in zip(params, exempt) if not e], False),
                ([p for p, e in zip(params, exempt) if e], True),
            ]
        for part, no_decay in parts:
            if not part:
                continue
            entry: dict[str, Any] = {"params": part, "lr_scale": scale, "layer_group": index, "name": name}
            if lr is not None:
                entry["lr"] = lr * scale
            if no_decay:
                entry["weight_decay"] = 0.0
                entry["weight_decay_scale"] = 0.0
                entry["name"] = f"{name} (no decay)"
            result.append(entry)
    return result
