"""Hand-off from the LR finder to schedules created with ``max_lr="auto"``."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError, MissingDependencyError
from cadence.lr_finder.sweep import find_lr

__all__ = ["AUTO_METHOD", "PLOT_FILE", "RESULT_FILE", "needs_lr_finder", "resolve_auto_schedules"]

RESULT_FILE = "lr_finder.json"
PLOT_FILE = "lr_finder.png"
#: Rule used for an "auto" schedule peak unless ``finder_options["method"]`` says otherwise. One-cycle and
#: cyclic schedules spend only a short time at their peak, so their max_lr belongs near the edge of the
#: falling part of the curve. In benchmarks/results/lr_finder_auto.md "steepest" came within about a point
#: of the best grid max_lr on two of three setups where "valley" lost 6-11 points, but it lost 9 points on
#: the third (too close to the divergence cliff), where "valley" was best. "valley" is the cautious choice.
AUTO_METHOD = "steepest"


def needs_lr_finder(schedule: Any) -> bool:
    """True for a schedule that was given ``"auto"`` and waits for :func:`resolve_auto_schedules`."""
    flag = getattr(schedule, "needs_lr_finder", False)
    return bool(flag() if callable(flag) else flag)


def _rank() -> tuple[bool, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True, torch.distributed.get_rank()
    return False, 0


def _copy_training_state(model: nn.Module, optimizer: torch.optim.Optimizer):
    """Deep-copy model and optimizer together, so the copied optimizer updates the copied parameters.

    Objects that cannot be copied (a DistributedDataParallel wrapper holds a process group) are used as they
    are: ``find_lr`` restores them exactly afterwards anyway.
    """
    try:
        return copy.deepcopy((model, optimizer))
    except Exception:
        return model, optimizer


def resolve_auto_schedules(
    schedules: Mapping[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    train_data: Any,
    run_dir: str | Path | None = None,
    precision: str | None = None,
    accumulation_steps: int = 1,
    finder_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Replace every schedule with ``needs_lr_finder`` by ``schedule.with_lr(suggested_lr)``.

    The LR range test runs once, on a copy of the training state (model and optimizer deep-copied together;
    RNG states restored afterwards), with ``finder_options`` passed on to :func:`find_lr` (e.g.
    ``{"end_lr": 1.0, "repeats": 3, "method": "valley"}``). The suggestion rule defaults to
    :data:`AUTO_METHOD` ("steepest"): a schedule's *peak* LR, measured to work better than the "valley"
    rule meant for a constant LR. With ``run_dir`` its result is written to
    ``run_dir/lr_finder.json`` (with the chosen ``value``, ``method``, all ``suggestions``, the curve and the
    resolved schedules) and ``run_dir/lr_finder.png`` (when matplotlib is installed). When
    ``run_dir/lr_finder.json`` already exists (a resumed run) its recorded ``value`` is reused and nothing
    is swept, so a resumed run follows exactly the schedule it started with. Under ``torch.distributed`` every
    rank sweeps together (the finder averages losses over ranks), rank 0 alone writes files, and a recorded
    value read by rank 0 is broadcast to all ranks. Schedules without ``needs_lr_finder`` pass through.

    Example::

        schedules = {"lr": one_cycle(max_lr="auto", total_steps=2000)}
        schedules = resolve_auto_schedules(schedules, model=model, optimizer=optimizer,
                                           loss_fn=cross_entropy, train_data=loader, run_dir="runs/a")
    """
    pending = [name for name, schedule in schedules.items() if needs_lr_finder(schedule)]
    if not pending:
        return dict(schedules)
    distributed, rank = _rank()
    result_path = None if run_dir is None else Path(run_dir) / RESULT_FILE

    recorded: float | None = None
    if result_path is not None and rank == 0 and result_path.exists():
        try:
            data = json.loads(result_path.read_text())
            recorded = float(data.get("value", data.get("suggestion")))
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"{result_path} is not a valid LR finder record ({error}); delete it to re-run"
            ) from error
    if distributed:
        shared = [recorded]
        torch.distributed.broadcast_object_list(shared, src=0)
        recorded = shared[0]

    result = None
    if recorded is not None:
        value = recorded
    else:
        options = {"progress": False, "method": AUTO_METHOD, **dict(finder_options or {})}
        model_copy, optimizer_copy = _copy_training_state(model, optimizer)
        result = find_lr(
            model_copy,
            optimizer_copy,
            loss_fn,
            train_data,
            precision=precision,
            accumulation_steps=accumulation_steps,
            **options,
        )
        del model_copy, optimizer_copy
        value = result.suggestion
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(
                "max_lr='auto': the LR finder found no usable learning rate (the loss never decreased); "
                "give max_lr a number or widen finder_options start_lr/end_lr"
            )

    resolved = {
        name: schedule.with_lr(value) if name in pending else schedule for name, schedule in schedules.items()
    }
    if result is not None and result_path is not None and rank == 0:
        result.save_json(result_path, value=value, resolved={name: repr(resolved[name]) for name in pending})
        # The JSON record is what matters; the plot is optional.
        with contextlib.suppress(MissingDependencyError):
            result.plot(result_path.with_name(PLOT_FILE))
    return resolved
