"""``cadence find-lr CONFIG.toml``: run the LR range test for a config and print its suggestions.

Builds data, model, optimizer and loss exactly as ``cadence train`` would (``cadence.config``), sweeps the
learning rate with :func:`cadence.lr_finder.find_lr`, prints the suggestions as a table and writes
``lr_finder.json`` and ``lr_finder.png`` (when matplotlib is installed) into ``--output``.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from cadence.errors import ConfigError, MissingDependencyError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="TOML experiment config (as for `cadence train`)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optimizer.weight_decay=1e-4 (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=Path("."), help="directory for lr_finder.json/.png")
    parser.add_argument("--repeats", type=int, default=1, help="sweeps with different data orders (spread)")
    parser.add_argument("--num-steps", type=int, default=100, help="optimizer updates per sweep")
    parser.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last learning rate")
    parser.add_argument("--mode", choices=("exp", "linear"), default="exp", help="LR spacing")
    parser.add_argument(
        "--method", choices=("valley", "steepest", "minimum"), default="valley", help="the rule to suggest by"
    )
    parser.add_argument(
        "--weight-decays",
        type=float,
        nargs="+",
        default=None,
        metavar="WD",
        help="sweep once per weight decay and choose the one allowing the largest LR at the lowest loss",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from cadence.config import build_experiment, load_config
    from cadence.lr_finder import find_lr

    config = load_config(args.config, args.overrides)
    experiment = build_experiment(config)
    train = dict(experiment.config.get("train", {}))
    loss_fn = experiment.loss_fn
    smoothing = float(train.get("label_smoothing", 0.0) or 0.0)
    if (
        smoothing > 0
    ):  # the Trainer smooths targets; here the loss does it, with the same effect on hard labels
        loss_fn = functools.partial(loss_fn, label_smoothing=smoothing)
    precision = train.get("precision")
    result = find_lr(
        experiment.model,
        experiment.optimizer,
        loss_fn,
        experiment.train_loader,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_steps=args.num_steps,
        mode=args.mode,
        accumulation_steps=int(train.get("accumulation_steps", 1)),
        precision=None if precision in (None, "fp32") else precision,
        repeats=args.repeats,
        weight_decays=args.weight_decays,
        method=args.method,
        seed=int(train.get("seed", 0)),
        progress=not args.no_progress,
        device=experiment.trainer_options.get("device"),
    )
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--output {args.output}: cannot create the directory ({error})") from error
    json_path = result.save_json(args.output / "lr_finder.json", config=str(args.config))
    print(f"LR range test for {args.config} ({len(result.lrs)} steps)\n")
    print(result.summary())
    print(f"\nwrote {json_path}")
    try:
        plot_path = result.plot(args.output / "lr_finder.png", title=f"LR range test: {args.config.name}")
        print(f"wrote {plot_path}")
    except MissingDependencyError as error:
        print(f"no plot: {error}")
    return 0
