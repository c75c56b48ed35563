"""The weights of a model that may be sharded by FSDP2 (``torch.distributed.fsdp.fully_shard``).

A sharded model's parameters are ``DTensor`` shards: each rank holds ``1/N`` of every parameter. Techniques
that keep their own copy of the weights (SWA, EMA, snapshots, the LR finder's restore point) work on what
this module gives them instead of ``model.state_dict()`` or a deep copy of the module:

- :func:`local_tensor`: the rank's own part of a parameter (the tensor itself when it is not sharded), so a
  copy of the weights costs ``1/N`` of the model on each rank;
- :func:`full_state_dict`: the whole ``state_dict`` gathered on rank 0, for a file a plain model loads
  (every rank must call it: it is a collective);
- :func:`resharded`: every FSDP unit back in its sharded state, so ``model.parameters()`` are the shards.

Nothing here needs a process group when the model is not sharded.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

__all__ = ["full_state_dict", "is_sharded_module", "local_tensor", "resharded", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a ``DistributedDataParallel`` / ``DataParallel`` and/or ``torch.compile``
    wrapper, or ``model`` itself; state dicts saved from it have the same keys with and without wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


@functools.cache
def _fsdp_module_class() -> type | None:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch built without distributed support
        return None
    return FSDPModule


def is_sharded_module(model: nn.Module) -> bool:
    """True when ``fully_shard`` sharded ``model`` (its parameters are ``DTensor`` shards)."""
    fsdp_module = _fsdp_module_class()
    return fsdp_module is not None and isinstance(model, fsdp_module)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of ``tensor`` (``DTensor.to_local()``); ``tensor`` itself when it is not sharded."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if callable(to_local) else tensor


def resharded(model: nn.Module) -> nn.Module:
    """Reshard every FSDP unit of ``model`` (FSDP keeps the root's parameters gathered after a forward
    without backward); afterwards ``model.parameters()`` are the registered ``DTensor`` shards."""
    fsdp_module = _fsdp_module_class()
    if fsdp_module is not None:
        for module in model.modules():
            if isinstance(module, fsdp_module):
                module.reshard()
    return model


def full_state_dict(model: nn.Module) -> dict[str, Any]:
    """``model``'s whole ``state_dict`` as plain tensors.

    A sharded model's shards are gathered onto rank 0's CPU memory (every rank must call this; ranks other
    than 0 get ``{}``); a model that is not sharded returns ``model.state_dict()``.
    """
    if not is_sharded_module(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
