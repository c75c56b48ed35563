"""Start N copies of the ``cadence`` command on this machine, as ``torchrun --standalone`` would.

Each copy gets the environment variables torchrun sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) with a free port on 127.0.0.1, so the command calls
:func:`~cadence.distributed.init_from_env` exactly as under torchrun. The exit code of the first process
that fails is returned unchanged (so a configuration error still exits with 2), and the others are stopped.
SIGTERM or SIGINT sent to the launcher is forwarded to every process, and the launcher waits for them (up to
:data:`GRACE_PERIOD_S`, then kills what is left) before exiting with ``128 + signal``: stopping the launcher
never leaves ranks training on their own.
For several machines use ``torchrun --nnodes ... -m cadence ...`` directly (see docs/distributed.md).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from cadence.errors import ConfigError

__all__ = ["find_free_port", "launch_local", "strip_nproc"]

#: Seconds the other processes get to exit on their own after one of them failed.
GRACE_PERIOD_S = 5.0


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """Remove ``--nproc N`` / ``--nproc=N`` from a command line, so started processes do not launch again."""
    result: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--nproc":
            skip_next = True
        elif not arg.startswith("--nproc="):
            result.append(arg)
    return result


def _stop(processes: list[subprocess.Popen], signal_number: int = signal.SIGTERM) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal_number)
    deadline = time.monotonic() + GRACE_PERIOD_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch_local(
    nproc: int,
    argv: Sequence[str],
    *,
    module: str = "cadence",
    master_port: int | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``python -m cadence ARGV`` in ``nproc`` processes on this machine; return the exit code.

    ``argv`` is the command line after ``cadence``, e.g. ``["train", "config.toml"]``; any ``--nproc``
    option in it is removed. Returns 0 when every process succeeded, otherwise the exit code of the first
    process that failed (the others are then stopped). ``nproc`` = 1 still runs one child process, with
    ``WORLD_SIZE=1`` (no process group is created). Unless ``OMP_NUM_THREADS`` is set, each process gets
    ``cpu_count // nproc`` intra-op threads. Equivalent to::

        python -m torch.distributed.run --standalone --nproc-per-node N -m cadence ARGV
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"--nproc={nproc!r}: expected a whole number of processes >= 1")
    argv = strip_nproc(argv)
    port = master_port or find_free_port()
    base_env = dict(os.environ if env is None else env)
    if nproc > 1 and "OMP_NUM_THREADS" not in base_env:
        # like torchrun, keep N processes from each starting one thread per core (oversubscription), but
        # share the cores out instead of torchrun's single thread
        base_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    processes: list[subprocess.Popen] = []
    received: list[int] = []
    forwarded = (signal.SIGTERM, signal.SIGINT)
    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        previous = {
            number: signal.signal(number, lambda number, frame: received.append(number))
            for number in forwarded
        }
    try:
        for rank in range(nproc):
            rank_env = dict(base_env)
            rank_env.update(
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc),
                GROUP_RANK="0",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
            )
            processes.append(subprocess.Popen([sys.executable, "-m", module, *argv], env=rank_env))
        while True:
            if received:  # forward the launcher's SIGTERM/SIGINT to every rank and wait for them
                _stop(processes, received[0])
                return 128 + int(received[0])
            codes = [process.poll() for process in processes]
            failed = [code for code in codes if code not in (None, 0)]
            if failed:
                _stop(processes)
                # a process killed by signal S reports -S; shells report 128 + S
                return int(failed[0]) if failed[0] > 0 else 128 - int(failed[0])
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.05)
    except KeyboardInterrupt:  # SIGINT while the handler was not installed (not the main thread)
        _stop(processes, signal.SIGINT)
        return 130
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
