"""``cadence find-lr CONFIG.toml``: choose the learning rate a run of this config would use, and show why.

Builds the run exactly as ``cadence train`` would (``cadence.config``) and calls the Trainer's own
:meth:`~cadence.train.trainer.Trainer.select_lr`: the same range test, the same race, the same training step
(precision, clipping, accumulation, label smoothing, mixup), the same data order and seed, the config's
``[lr_selection]`` options. So the value printed here is the value ``max_lr = "auto"`` gives in training.
A schedule with a numeric ``max_lr`` is treated as if it said ``"auto"`` (and the output says so). Writes
``lr_selection.json`` and ``lr_selection.png`` (when matplotlib is installed) into ``--output``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError
from cadence.schedules.base import needs_lr_finder
from cadence.tracking.run_dir import RunDir

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="TOML experiment config (as for `cadence train`)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set lr_selection.budget=0.5 (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=Path("."), help="directory for lr_selection.json/.png")
    parser.add_argument(
        "--method",
        choices=("race", "sweep"),
        default=None,
        help="race (default): sweep, then train candidates; sweep: the range test's suggestion only",
    )
    parser.add_argument("--budget", type=float, default=None, help="race cost in training runs (default 1)")
    parser.add_argument(
        "--rule",
        choices=("valley", "steepest", "minimum"),
        default=None,
        help="the sweep's rule (--method sweep)",
    )
    parser.add_argument("--num-steps", type=int, default=None, help="optimizer updates of the range test")
    parser.add_argument("--start-lr", type=float, default=None, help="first learning rate of the range test")
    parser.add_argument("--end-lr", type=float, default=None, help="last learning rate of the range test")
    parser.add_argument("--no-progress", action="store_true", help="print nothing while choosing")


def _as_auto(schedule: Any) -> tuple[Any, str | None]:
    """``schedule`` with its numeric ``max_lr`` replaced by "auto", and a note saying so."""
    if needs_lr_finder(schedule):
        return schedule, None
    fields = getattr(schedule, "lr_fields", ())
    if "max_lr" not in fields:
        raise ConfigError(
            f"find-lr: the lr schedule {schedule!r} has no max_lr to choose; use a schedule with max_lr "
            "(one_cycle, cyclic, cosine_restarts, ...), e.g. --set schedule.lr.max_lr=auto"
        )
    note = (
        f'the config gives max_lr = {schedule.max_lr}; with max_lr = "auto" a run would use the value below'
    )
    return dataclasses.replace(schedule, max_lr="auto"), note


def _overrides(args: argparse.Namespace) -> list[str]:
    pairs = [
        ("method", args.method and f'"{args.method}"'),
        ("budget", args.budget),
        ("rule", args.rule and f'"{args.rule}"'),
        ("num_steps", args.num_steps),
        ("start_lr", args.start_lr),
        ("end_lr", args.end_lr),
    ]
    return [f"lr_selection.{key}={value}" for key, value in pairs if value is not None]


def run(args: argparse.Namespace) -> int:
    from cadence.config import build_experiment, load_config
    from cadence.config.run import trainer_for
    from cadence.lr_finder.race import plot_selection

    config = load_config(args.config, [*args.overrides, *_overrides(args)])
    experiment = build_experiment(config)
    if "lr" not in experiment.schedules:
        raise ConfigError("find-lr: the config has no lr schedule ([schedule] with a name, or [schedule.lr])")
    experiment.schedules["lr"], note = _as_auto(experiment.schedules["lr"])
    trainer = trainer_for(experiment)
    if args.no_progress:
        trainer.progress = False
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--output {args.output}: cannot create the directory ({error})") from error
    selection = trainer.select_lr()
    record = selection.save_json(RunDir(args.output).lr_selection_path, config=str(args.config))
    plot = plot_selection(selection, RunDir(args.output).lr_selection_plot_path)
    print(f"\nLR selection for {args.config}\n")
    if note:
        print(note)
    print(selection.summary())
    print(
        f"\na run of this config uses max_lr = {selection.value:.4g} ({selection.method}: {selection.reason})"
    )
    print(f"wrote {record}")
    print(f"wrote {plot}" if plot is not None else "no plot: pip install 'cadence[plot]'")
    return 0
