"""The process group: who am I, how many are we, which device is mine, and waiting for each other.

Everything here works identically in a single process (no ``torch.distributed`` initialised): rank 0,
world size 1, barriers are no-ops. Launchers (``torchrun``, ``cadence train --nproc N``) set the environment
variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env`
turns them into an initialised process group.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import warnings
from collections.abc import Iterator

import torch
import torch.distributed as dist

from cadence.errors import ConfigError

__all__ = [
    "barrier",
    "check_world_size",
    "default_device",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "main_process_first",
    "restarted_by_torchrun",
]

#: The collective timeout of the group :func:`init_from_env` created, and a second (gloo) group used only to
#: find out which rank is stuck once a collective of the first has timed out (see ``ddp.py``).
_WATCH: dict[str, object] = {}

#: Environment variables a launcher must set for :func:`init_from_env`.
REQUIRED_ENVIRONMENT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank of this process: 0 when not distributed."""
    return dist.get_rank() if _initialized() else 0


def get_world_size() -> int:
    """Number of processes in the group: 1 when not distributed."""
    return dist.get_world_size() if _initialized() else 1


def get_local_rank() -> int:
    """Rank of this process on its machine (``LOCAL_RANK``, set by torchrun): 0 when not distributed."""
    if not _initialized():
        return 0
    return int(os.environ.get("LOCAL_RANK", dist.get_rank()))


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return _initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """True on rank 0, the one process that writes files, logs and shows progress."""
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    """True when this process was started by a launcher (``WORLD_SIZE`` is in the environment).

    ``cadence train --nproc N`` uses this to avoid launching again from inside the processes it started.
    """
    return "WORLD_SIZE" in os.environ


def restarted_by_torchrun() -> bool:
    """True in a process that ``torchrun --max-restarts`` started again after a failure
    (``TORCHELASTIC_RESTART_COUNT > 0``): ``fit(resume="auto")`` then continues from the latest checkpoint."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", get_local_rank() if _initialized() else 0)
    return torch.device("cpu")


def _default_backend() -> str:
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def init_from_env(backend: str | None = None, *, timeout_s: float = 1800.0) -> bool:
    """Initialise the process group from the launcher's environment variables; return :func:`is_distributed`.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by ``torchrun``
    and by ``cadence train --nproc N``). The backend defaults to ``nccl`` when CUDA is available and ``gloo``
    otherwise; with CUDA the current device becomes ``cuda:LOCAL_RANK``, so one process drives one GPU.

    ``timeout_s`` bounds every collective (``[distributed] timeout_s`` in a config, ``Trainer(timeout_s=)``):
    when a rank does not arrive within it, the others raise
    :class:`~cadence.distributed.ddp.CollectiveTimeoutError` instead of hanging, and rank 0's message names
    the ranks that did not arrive (found with a monitored barrier on a small second gloo group).

    Idempotent: when a group is already initialised (by a test, a notebook or the user), it is kept as is.
    Without ``WORLD_SIZE`` in the environment, or with ``WORLD_SIZE=1``, nothing is initialised and the
    program runs as a single process.

    Example::

        # torchrun --nproc-per-node 2 train.py
        init_from_env()
        model = wrap_model(model, default_device())
    """
    if _initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this build of torch has no torch.distributed support")
    missing = [name for name in REQUIRED_ENVIRONMENT if name not in os.environ]
    if missing:
        raise ConfigError(
            f"distributed launch: environment variables {', '.join(missing)} are not set; start the program "
            "with torchrun or `cadence train CONFIG --nproc N`, which set "
            f"{', '.join(REQUIRED_ENVIRONMENT)} and LOCAL_RANK"
        )
    backend = backend or _default_backend()
    if backend not in ("gloo", "nccl", "mpi", "ucc"):
        raise ConfigError(f"distributed backend={backend!r}: choose 'gloo' (CPU) or 'nccl' (CUDA)")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("distributed backend='nccl' needs CUDA devices; use backend='gloo' on CPU")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise ConfigError(f"distributed.timeout_s = {timeout_s!r}: expected a number of seconds > 0")
    timeout = datetime.timedelta(seconds=timeout_s)
    store = _attempt_store(timeout)
    if store is None:
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    else:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        dist.init_process_group(
            backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout
        )
    _WATCH["timeout_s"] = float(timeout_s)
    _WATCH["group"] = dist.new_group(backend="gloo", timeout=timeout)
    return is_distributed()


def _attempt_store(timeout: datetime.timedelta) -> dist.Store | None:
    """The store for a process group that ``torchrun --max-restarts`` restarted, or ``None`` for ``env://``.

    torchrun shares its rendezvous store with the workers (``TORCHELASTIC_USE_AGENT_STORE=True``) and keeps
    it across restarts, so the keys the previous attempt's ranks published (their gloo/NCCL addresses) are
    still there: a restarted rank can read a dead rank's address and fail with "connectFullMesh failed ...
    Connection refused" (pytorch/pytorch#135712). On one machine every worker has the same
    ``TORCHELASTIC_RESTART_COUNT``, so the group gets a namespace per attempt. Across machines the counts
    can differ (an agent that restarts for a membership change does not count it), so there we only warn:
    set ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` for torchrun, which then gives each attempt a new store.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or not restarted_by_torchrun():
        return None
    world_size = int(os.environ["WORLD_SIZE"])
    if int(os.environ.get("LOCAL_WORLD_SIZE", "0")) != world_size:
        warnings.warn(
            "restarted by torchrun on several machines with the shared rendezvous store: the previous "
            "attempt's addresses may still be in it (pytorch/pytorch#135712); start torchrun with "
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in the environment so every attempt gets a fresh store",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    client = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size,
        is_master=False,
        timeout=timeout,
    )
    return dist.PrefixStore(f"cadence/attempt-{os.environ['TORCHELASTIC_RESTART_COUNT']}", client)


def barrier() -> None:
    """Wait until every process reaches this point (no-op in a single process)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (e.g. rank 0 prepares a dataset cache).

    Example::

        with main_process_first():
            splits = cadence.data.load("mnist1d")
    """
    main = is_main_process()
    if not main:
        barrier()
    try:
        yield
    finally:
        if main:
            barrier()


def check_world_size(saved: int | None, current: int | None = None) -> None:
    """Refuse to resume a checkpoint written with a different number of processes.

    The data order, the per-rank shards and the step count of a run all depend on the world size, so a
    resume with another world size would not continue the same run. ``saved`` is the ``world_size`` stored in
    the checkpoint (``None`` for checkpoints that did not record it: accepted); ``current`` defaults to
    :func:`get_world_size`.
    """
    if saved is None:
        return
    current = get_world_size() if current is None else current
    if int(saved) != int(current):
        raise ConfigError(
            f"resume: the checkpoint was written with world_size={int(saved)} but this run has "
            f"world_size={int(current)}; resume with the same number of processes (--nproc {int(saved)}), "
            "or start a new run (optionally initialised from the checkpoint's model weights)"
        )
