"""Hand-off from the LR finder to schedules created with ``max_lr="auto"``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError
from cadence.lr_finder.race import LRSelection, load_selection, plot_selection, select_lr
from cadence.schedules.base import needs_lr_finder
from cadence.tracking.run_dir import RunDir

__all__ = [
    "AUTO_METHOD",
    "LEGACY_RESULT_FILE",
    "PLOT_FILE",
    "RESULT_FILE",
    "needs_lr_finder",
    "resolve_auto_schedules",
]

RESULT_FILE = RunDir.LR_SELECTION
PLOT_FILE = RunDir.LR_SELECTION_PLOT
#: Record written by cadence 0.1 (a sweep only); its ``value`` is still reused when a run resumes.
LEGACY_RESULT_FILE = RunDir.LEGACY_LR_FINDER
#: The default way ``max_lr="auto"`` is chosen: a sweep brackets the range, a short race decides.
AUTO_METHOD = "race"


def _recorded_value(run_dir: Path) -> float | None:
    """The LR a previous start of this run chose (``lr_selection.json``, or 0.1's ``lr_finder.json``)."""
    selection = load_selection(run_dir / RESULT_FILE)
    if selection is not None:
        return selection.value
    legacy = run_dir / LEGACY_RESULT_FILE
    if legacy.exists():
        try:
            data = json.loads(legacy.read_text())
            return float(data.get("value", data.get("suggestion")))
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"{legacy} is not a valid LR finder record ({error}); delete it to re-run"
            ) from error
    return None


def resolve_auto_schedules(
    schedules: Mapping[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    train_data: Any,
    total_steps: int,
    run_dir: str | Path | None = None,
    selection_options: Mapping[str, Any] | None = None,
    trainer_options: Mapping[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    seed: int = 0,
    log: Any = None,
) -> tuple[dict[str, Any], LRSelection | None]:
    """Replace every schedule with ``needs_lr_finder`` by ``schedule.with_lr(chosen)``.

    The value is chosen by :func:`cadence.lr_finder.select_lr` (``selection_options`` are its keyword
    arguments: ``method``, ``budget``, ``candidates``, ``val_fraction``, ``rule``, ``sweep_options``) on
    copies of the training state, with the run's training step (``trainer_options``, ``callbacks``). With
    ``run_dir`` the selection is written to ``run_dir/lr_selection.json`` (every candidate, the sweep, the
    cost, the
    resolved schedules) and ``lr_selection.png``. When that record already exists (a resumed run) its value is
    reused and nothing is trained, so a resumed run follows exactly the schedule it started with. Under
    ``torch.distributed`` every rank takes part in the selection, rank 0 alone writes, and a recorded value
    read by rank 0 is broadcast to all ranks. Returns the schedules and the selection (None when reused).

    Example::

        schedules, selection = resolve_auto_schedules(
            {"lr": one_cycle(max_lr="auto", total_steps=2000)}, model=model, optimizer=optimizer,
            loss_fn=cross_entropy, train_data=loader, total_steps=2000, run_dir="runs/a")
    """
    pending = [name for name, schedule in schedules.items() if needs_lr_finder(schedule)]
    if not pending:
        return dict(schedules), None
    main = distributed.is_main_process()
    recorded = distributed.broadcast_object(_recorded_value(Path(run_dir)) if run_dir and main else None)
    selection = None
    if recorded is not None:
        value = float(recorded)
    else:
        options = {"method": AUTO_METHOD, **dict(selection_options or {})}
        selection = select_lr(
            model,
            optimizer,
            loss_fn,
            train_data,
            schedules,
            total_steps=total_steps,
            trainer_options=trainer_options,
            callbacks=callbacks,
            seed=seed,
            log=log,
            **options,
        )
        value = selection.value
    resolved = {
        name: schedule.with_lr(value) if name in pending else schedule for name, schedule in schedules.items()
    }
    if selection is not None and run_dir is not None and main:
        path = Path(run_dir) / RESULT_FILE
        selection.save_json(path, resolved={name: repr(resolved[name]) for name in pending})
        plot_selection(selection, path.with_name(PLOT_FILE))
    return resolved, selection
