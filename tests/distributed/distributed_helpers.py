"""Run a function in several gloo processes on CPU (torch.multiprocessing spawn, free port)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cadence.distributed import find_free_port
from cadence.train.callback import Callback


class StopAt(Callback):
    """Stops the run at ``step`` (inside an epoch): the interrupted half of a resumed run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            state.should_stop = True


def _entry(
    rank: int, function: Callable[..., Any], world_size: int, port: int, args: tuple, init: bool = True
) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from cadence.distributed import init_from_env

    if init:
        init_from_env("gloo", timeout_s=60)
    try:
        function(rank, *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(function: Callable[..., Any], *args: Any, world_size: int = 2, init: bool = True) -> None:
    """Call ``function(rank, *args)`` on ``world_size`` processes joined in one gloo group.

    ``init=False`` only sets torchrun's environment (RANK, WORLD_SIZE, ...) and leaves the group to the code.
    """
    # forkserver: torch is imported once in the server process, then each rank is a cheap fork of it
    # (plain fork is unsafe after the parent has used OpenMP threads; spawn re-imports torch every time).
    # DistributedDataParallel imports torch._dynamo on construction (seconds): preload it as well.
    mp.set_forkserver_preload(
        ["torch", "torch._dynamo", "torch.distributed", "cadence.distributed", __name__]
    )
    for attempt in range(3):
        try:
            mp.start_processes(
                _entry,
                args=(function, world_size, find_free_port(), args, init),
                nprocs=world_size,
                start_method="forkserver",
            )
            return
        except mp.ProcessRaisedException as error:
            # The free port is released before rank 0 binds it, so a parallel test can take it first.
            if attempt == 2 or "address already in use" not in str(error).lower():
                raise


def save_result(directory: Path, rank: int, value: Any) -> None:
    torch.save(value, Path(directory) / f"rank{rank}.pt")


def load_results(directory: Path, world_size: int = 2) -> list[Any]:
    return [torch.load(Path(directory) / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]


def do_nothing(rank: int) -> None:
    """Used to start the fork server once, before the first timed test."""
