"""Data parallelism: wrapping a model in DistributedDataParallel and reducing values over processes.

All functions are no-ops (or identity) in a single process, so the same loop runs with and without
``torchrun``.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cadence.distributed import environment
from cadence.distributed.environment import is_distributed
from cadence.distributed.fsdp import check_strategy, shard_model
from cadence.errors import ConfigError
from cadence.weights import unwrap_model

__all__ = [
    "CollectiveTimeoutError",
    "all_reduce_mean",
    "all_reduce_mean_tensor",
    "all_reduce_sum_tensor",
    "broadcast_object",
    "changes_trainable",
    "unwrap_model",
    "wrap_model",
]


class CollectiveTimeoutError(RuntimeError):
    """A collective did not complete within the group's timeout (``[distributed] timeout_s``)."""


@contextlib.contextmanager
def named_timeouts(what: str | Callable[[], str]) -> Iterator[None]:
    """Turn the backend's timeout error inside the block into a :class:`CollectiveTimeoutError` that says
    what timed out, after how long, and (on rank 0, when :func:`~cadence.distributed.init_from_env` made
    the group) which ranks did not arrive. ``what`` may be a function, called only when a timeout happened
    (the Trainer names the step it was at)."""
    try:
        yield
    except RuntimeError as error:
        if "timed out" not in str(error).lower() or isinstance(error, CollectiveTimeoutError):
            raise
        raise CollectiveTimeoutError(_timeout_message(what if isinstance(what, str) else what())) from error


def _timeout_message(what: str) -> str:
    rank = dist.get_rank()
    timeout_s = environment._WATCH.get("timeout_s")
    after = f" after {timeout_s:g} s" if isinstance(timeout_s, float) else ""
    who = "the rank that did not arrive could not be determined"
    group = environment._WATCH.get("group")
    if group is not None and isinstance(timeout_s, float):
        # The timed-out group's connections are closed: ask on the second group who is still answering.
        try:
            dist.monitored_barrier(
                group=group, timeout=datetime.timedelta(seconds=timeout_s), wait_all_ranks=True
            )
            who = "every rank answered afterwards: one was only slow"
        except RuntimeError as error:
            found = re.search(r"Ranks? ([\d, ]+) failed to pass", str(error))
            if found:
                who = f"rank(s) {found.group(1).strip()} did not arrive"
            elif rank != 0:
                who = "rank 0 names the ranks that did not arrive in its own error"
    return (
        f"distributed: {what} timed out on rank {rank}{after}; {who}. A stuck or dead rank stops the "
        "others this way; if one rank is slow on purpose (a long evaluation or checkpoint on one rank), "
        "raise [distributed] timeout_s (Trainer(timeout_s=...))"
    )


def _communication_device() -> torch.device:
    # NCCL reduces only CUDA tensors; gloo takes CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def wrap_model(
    model: nn.Module,
    device: torch.device | str | None = None,
    *,
    find_unused_parameters: bool = False,
    trainable_changes: bool = False,
    static_graph: bool = False,
    sync_batchnorm: bool = False,
    broadcast_buffers: bool = True,
    strategy: str = "ddp",
    precision: str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> nn.Module:
    """Return ``model`` wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` when world size > 1.

    ``strategy="fsdp"`` shards the model instead (:func:`cadence.distributed.fsdp.shard_model`:
    ``fully_shard`` on each child with parameters, then on the root; in place, the same object returned),
    with FSDP's mixed-precision policy for ``precision="bf16"``; ``optimizer``, created on the unsharded
    model, is pointed at the sharded parameters (``fully_shard`` replaces them). Any other value of
    ``strategy`` raises :class:`~cadence.errors.ConfigError` naming the allowed ones. The DDP options
    below do not apply to FSDP; ``trainable_changes`` is refused there.

    In a single process the model is returned unchanged (moved to ``device`` if given). Under DDP, rank 0's
    parameters and buffers are broadcast at construction, so every rank starts from identical weights, and
    gradients are averaged over ranks during ``backward()``: one optimizer step then equals a step on the
    global batch (per-device batch × world size) when the loss is a mean over the batch.

    Frozen parameters: DDP registers the parameters that have ``requires_grad=True`` *when the model is
    wrapped*, and expects a gradient for each of them in every backward pass.

    - Frozen for the whole run (fine-tuning with a frozen backbone): nothing to do; frozen parameters are
      left out of the reduction.
    - Frozen *during* the run (FreezeOut, :func:`~cadence.transfer.freezing.freeze_`): the next backward fails
      with "Expected to have finished reduction in the prior iteration" unless
      ``find_unused_parameters=True``.
    - Unfrozen during the run (gradual unfreezing): parameters frozen at wrapping time are not registered,
      so after unfreezing their gradients would *silently not be averaged* and the ranks' weights drift
      apart.

    For both mid-run cases pass ``trainable_changes=True``: every parameter is registered (the frozen ones
    briefly made trainable while wrapping) and ``find_unused_parameters`` is switched on, so DDP walks the
    autograd graph after each forward and treats currently frozen parameters as unused (their ``grad``
    stays ``None``; the optimizer skips them). The cost is one graph traversal per step. ``static_graph=True``
    is not compatible with either case: it assumes the set of used parameters never changes.

    ``broadcast_buffers`` (default True) copies rank 0's buffers (BatchNorm running statistics) to the other
    ranks at every forward. ``sync_batchnorm=True`` converts BatchNorm layers to
    :class:`~torch.nn.SyncBatchNorm`, so batch statistics are computed over the global batch instead of per
    rank.
    """
    check_strategy(strategy)
    if device is not None:
        model = model.to(device)
    if not is_distributed():
        return model
    if strategy == "fsdp":
        if trainable_changes:
            raise ConfigError(
                "strategy = 'fsdp' does not support freezing or unfreezing layers during the run (FreezeOut, "
                "gradual unfreezing): use strategy = 'ddp' for them"
            )
        if sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return shard_model(model, precision=precision, optimizer=optimizer)
    if isinstance(model, DistributedDataParallel):
        return model
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    frozen = [parameter for parameter in model.parameters() if not parameter.requires_grad]
    if trainable_changes:
        find_unused_parameters = True
        for parameter in frozen:  # registered with DDP now, so that unfreezing later is reduced too
            parameter.requires_grad_(True)
    device_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if (device.type == "cuda")
        else None
    )
    options: dict[str, Any] = {}
    if not broadcast_buffers:  # the default (True) is left implicit: newer torch deprecates the argument
        options["broadcast_buffers"] = False
    try:
        return DistributedDataParallel(
            model,
            device_ids=device_ids,
            find_unused_parameters=find_unused_parameters,
            static_graph=static_graph,
            **options,
        )
    finally:
        if trainable_changes:
            for parameter in frozen:
                parameter.requires_grad_(False)


def changes_trainable(callbacks: Iterable[object]) -> bool:
    """True when one of ``callbacks`` freezes or unfreezes parameters during the run.

    That is any callback with a true ``changes_trainable`` capability flag (FreezeOut and gradual
    unfreezing set it; see :class:`cadence.train.callback.Callback`): this layer knows no callback class. A
    training loop passes the answer to :func:`wrap_model` as ``trainable_changes``::

        model = wrap_model(model, device, trainable_changes=changes_trainable(callbacks))
    """
    return any(getattr(callback, "changes_trainable", False) for callback in callbacks)


def all_reduce_sum_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place and return it (unchanged in a single process)."""
    if not is_distributed():
        return tensor
    if tensor.device == _communication_device():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor
    buffer = tensor.detach().to(_communication_device())
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    tensor.copy_(buffer.to(tensor.device))
    return tensor


def all_reduce_mean_tensor(tensor: torch.Tensor, *, what: str = "an all_reduce") -> torch.Tensor:
    """The mean of ``tensor`` over all processes, as a new float64 tensor on ``tensor``'s device.

    Nothing is read on the host, so a loop can reduce a whole log interval of values with one collective
    and then read them in one transfer. In a single process ``tensor`` itself is returned. ``what`` names
    the collective in the :class:`CollectiveTimeoutError` raised when another rank does not arrive.
    """
    if not is_distributed():
        return tensor
    buffer = tensor.detach().to(device=_communication_device(), dtype=torch.float64, copy=True)
    with named_timeouts(what):
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return (buffer / dist.get_world_size()).to(tensor.device)


def all_reduce_mean(values: Mapping[str, float], *, weight: float = 1.0) -> dict[str, float]:
    """Average scalar metrics over processes: each rank passes its local values, all get the global mean.

    With ``weight`` (e.g. the number of samples a rank evaluated) the result is the weighted mean
    ``sum_r weight_r · value_r / sum_r weight_r``, which equals the mean over all samples when shards have
    unequal sizes. Every rank must pass the same keys. In a single process a copy of ``values`` is returned.

    Example::

        local = {"loss": loss_sum / count, "accuracy": correct / count}
        global_ = all_reduce_mean(local, weight=count)
    """
    if not is_distributed():
        return {key: float(value) for key, value in values.items()}
    keys = sorted(values)
    packed = torch.tensor(
        [float(values[key]) * weight for key in keys] + [float(weight)],
        dtype=torch.float64,
        device=_communication_device(),
    )
    with named_timeouts("an all_reduce of metrics"):
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    total_weight = packed[-1].item()
    if total_weight == 0:
        raise ValueError("all_reduce_mean: the weights of all ranks sum to 0; pass weight > 0 on some rank")
    return {key: packed[index].item() / total_weight for index, key in enumerate(keys)}


def broadcast_object(value: Any, source: int = 0) -> Any:
    """Return rank ``source``'s ``value`` on every process (any picklable object; identity when single).

    The LR finder uses this so that every rank applies the same learning rate.
    """
    if not is_distributed():
        return value
    holder = [value]
    with named_timeouts(f"a broadcast from rank {source}"):
        dist.broadcast_object_list(holder, src=source)
    return holder[0]
