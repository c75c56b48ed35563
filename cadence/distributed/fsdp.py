"""Fully sharded data parallelism (FSDP2, ``torch.distributed.fsdp.fully_shard``) and sharded checkpoints.

Under ``strategy="fsdp"`` every rank holds ``1/N`` of each parameter, of its gradient and of the optimizer
state; a layer's full parameters are gathered just before its forward (and backward) and freed after. In a
single process nothing is sharded: the model is returned unchanged, as under DDP.

Sharded checkpoints are written with ``torch.distributed.checkpoint`` (DCP): every rank writes its own
shards into one directory. :func:`save_sharded` writes into a temporary directory that rank 0 renames into
place once every rank has finished, and returns the SHA-256 of every file in it; the caller stores those
digests in a checkpoint file loaded with ``weights_only=True``. :func:`load_sharded` checks every file
against them *before* DCP reads anything (DCP's ``.metadata`` file is a pickle: a file that does not match
is refused unread), so a sharded checkpoint never executes code it was not written with.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cadence.distributed.environment import is_distributed
from cadence.errors import ConfigError
from cadence.weights import is_sharded_module

__all__ = [
    "STRATEGIES",
    "ShardedCheckpointError",
    "check_strategy",
    "file_digests",
    "is_sharded",
    "load_sharded",
    "save_sharded",
    "shard_model",
]

#: The values of ``[distributed] strategy`` / ``Trainer(strategy=...)``.
STRATEGIES = ("ddp", "fsdp")


class ShardedCheckpointError(ConfigError):
    """A sharded checkpoint directory is missing, or its files differ from the ones that were written."""


def check_strategy(strategy: object, field: str = "strategy") -> str:
    """``strategy`` when it is one of :data:`STRATEGIES`; else :class:`ConfigError` naming ``field``."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ConfigError(
            f"{field} = {strategy!r}: expected one of {', '.join(repr(value) for value in STRATEGIES)} "
            "('ddp' replicates the model on every rank, 'fsdp' shards parameters, gradients and optimizer "
            "state over the ranks)"
        )
    return strategy


def _mixed_precision_policy(precision: str | None) -> Any:
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == "bf16":
        # parameters gathered and computed in bf16; gradients reduced and kept (sharded) in fp32
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if precision == "fp16":
        raise ConfigError(
            "precision = 'fp16' with strategy = 'fsdp' is not supported: FSDP's sharded gradients need a "
            "sharded loss scaler; use precision = 'bf16' (no loss scaling) or strategy = 'ddp'"
        )
    return MixedPrecisionPolicy()


def shard_model(
    model: nn.Module, *, precision: str | None = None, optimizer: torch.optim.Optimizer | None = None
) -> nn.Module:
    """Apply ``fully_shard`` to every direct child of ``model`` that holds parameters, then to ``model``.

    Each child becomes one unit whose parameters are gathered together for its forward and backward and
    freed after; the root unit takes the parameters left directly on ``model``. ``precision="bf16"`` gives
    FSDP a :class:`~torch.distributed.fsdp.MixedPrecisionPolicy` that gathers parameters in bf16 and
    reduces gradients in fp32 (the sharded parameters and optimizer state stay fp32). ``model`` is
    changed in place (its parameters become new ``DTensor`` parameters) and returned. In a single process
    it is returned unchanged.

    ``fully_shard`` replaces the parameter objects, so an ``optimizer`` created before is pointed at the
    new ones (same names, same order, same groups); it must not have stepped yet.
    """
    if not is_distributed():
        return model
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(model, FSDPModule):
        return model
    policy = _mixed_precision_policy(precision)
    names = {id(parameter): name for name, parameter in model.named_parameters(remove_duplicate=False)}
    if optimizer is not None:
        if optimizer.state:
            raise ConfigError(
                "strategy = 'fsdp': the optimizer has already stepped; create it on the unsharded model and "
                "pass it before any update (its state would not follow the parameters into their shards)"
            )
        held = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        if any(id(parameter) not in names for parameter in held):
            raise ConfigError("strategy = 'fsdp': the optimizer holds parameters that are not the model's")
    for child in model.children():
        if any(True for _ in child.parameters()) and not isinstance(child, FSDPModule):
            fully_shard(child, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    if optimizer is not None:
        sharded = dict(model.named_parameters(remove_duplicate=False))
        for group in optimizer.param_groups:
            group["params"] = [sharded[names[id(parameter)]] for parameter in group["params"]]
    return model


def is_sharded(model: nn.Module) -> bool:
    """True when ``model`` was sharded by ``fully_shard`` (its parameters are ``DTensor`` shards)."""
    return is_sharded_module(model)


def file_digests(directory: str | Path) -> dict[str, str]:
    """SHA-256 (hex) of every file in ``directory``, by name."""
    directory = Path(directory)
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            found[path.name] = digest.hexdigest()
    return found


def save_sharded(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    directory: str | Path,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write the sharded model and optimizer state to ``directory`` (every rank calls it) atomically.

    ``extra``: more state sharded like the model (e.g. an averaged model's shards, by callback), saved under
    ``"extra"`` and read back by :func:`load_sharded` with the same keys.

    ``directory`` is rank 0's (a shared file system, as for resuming under DDP). The shards go to
    ``<directory>.tmp`` (removed first if a crash left one), and rank 0 renames it onto
    ``directory`` when every rank has written (a barrier), then fsyncs the parent. Returns, on every rank,
    the SHA-256 of each file, to be stored where :func:`load_sharded` can check them.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    chosen: list[Any] = [str(directory)]
    dist.broadcast_object_list(chosen, src=0)  # rank 0's directory: every rank writes its shards there
    directory = Path(chosen[0])
    temporary = directory.with_name(directory.name + ".tmp")
    if dist.get_rank() == 0:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.parent.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_state, "optimizer": optimizer_state}
    if extra:
        state["extra"] = dict(extra)
    dcp.save(state, checkpoint_id=temporary)
    dist.barrier()  # every rank's shards and rank 0's metadata are on disk
    digests: list[Any] = [None]
    if dist.get_rank() == 0:
        digests[0] = file_digests(temporary)
        shutil.rmtree(directory, ignore_errors=True)  # a directory of the same step no file refers to
        os.replace(temporary, directory)
        _fsync_directory(directory.parent)
    dist.broadcast_object_list(digests, src=0)
    return digests[0]


def load_sharded(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    directory: str | Path,
    digests: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Load what :func:`save_sharded` wrote into ``model`` and ``optimizer`` (every rank calls it).

    ``extra``: tensors shaped and sharded like the ``extra`` that was saved, loaded in place; returned
    (``{}`` without it).

    Every file in ``directory`` is checked against ``digests`` first: missing, added or changed files
    raise :class:`ShardedCheckpointError` before anything is read, so DCP's pickled metadata is only ever
    read when it is the file that was written.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    directory = Path(directory)
    if not directory.is_dir():
        raise ShardedCheckpointError(f"resume: the shards directory {str(directory)!r} is missing")
    found = file_digests(directory)
    if found != dict(digests):
        differing = {name for name in found if found[name] != digests.get(name)}
        changed = sorted(set(found) ^ set(digests) | differing)
        raise ShardedCheckpointError(
            f"sharded checkpoint {str(directory)!r} is corrupt: files missing, added or changed since it was "
            f"written ({', '.join(changed[:6])}); refusing to read it"
        )
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_state, "optimizer": optimizer_state}
    if extra:
        state["extra"] = dict(extra)
    dcp.load(state, checkpoint_id=directory)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    return dict(state.get("extra", {}))


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
