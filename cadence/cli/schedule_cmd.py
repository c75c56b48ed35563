"""``cadence schedule``: preview a schedule before paying for a run.

Draws the LR (and momentum, when there is one) against the step to a PNG, with epochs on a second axis when
``--steps-per-epoch`` is given, and prints the values at the phase boundaries and cycle ends::

    cadence schedule one_cycle --set max_lr=0.1 --set total_steps=1000 --steps-per-epoch 100
    cadence schedule cyclic --set base_lr=1e-3 --set max_lr=6e-3 --set step_size_up=200 --output clr.png
    cadence schedule --config configs/run.toml

Nothing is written unless ``--output`` names the plot file: ``.png``, ``.svg`` or ``.pdf``; a name without a
suffix gets ``.png``; an existing directory gets ``NAME.png`` inside it. The path written is printed.

A config file holds a ``[schedule]`` table (``name = "..."`` plus arguments), or ``[schedule.lr]`` and
``[schedule.momentum]`` tables. Training configs work as they are: ``*_epochs`` keys are converted and a
missing ``total_steps`` is the run's length from ``[train]`` (``epochs`` needs ``--steps-per-epoch``).
``--set key=value`` overrides an argument (``momentum.key=value`` for the momentum table); values are read
as TOML (``0.1``, ``true``, ``"cos"``; a bare word is a string). For ``one_cycle`` and ``cyclic`` given by
name, the matching momentum (torch's ``cycle_momentum``) is drawn too; ``--set base_momentum=...`` and
``--set max_momentum=...`` adjust it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError, MissingDependencyError, require
from cadence.schedules import (
    SCHEDULES,
    CosineRestarts,
    Cyclic,
    CyclicMomentum,
    OneCycle,
    Schedule,
    from_config,
    schedule_keys,
)
from cadence.schedules.base import check_integer
from cadence.schedules.combinators import Repeat
from cadence.schedules.recipes import RampSustainDecay

__all__ = ["PLOT_SUFFIXES", "add_arguments", "plot_path", "run"]

#: at most this many points are drawn; longer schedules are sampled evenly
MAX_POINTS = 20_000
#: at most this many rows in the printed table
MAX_ROWS = 60
_MOMENTUM_KEYS = ("base_momentum", "max_momentum")
#: file types ``--output`` can be (matplotlib writes them without extra packages)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help=f"schedule name, one of: {', '.join(SCHEDULES)}")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a schedule argument, e.g. --set max_lr=0.1 (repeat for several)",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="read the [schedule] table of a TOML file")
    parser.add_argument("--steps", metavar="N", help="steps to draw (default: the schedule's total_steps)")
    parser.add_argument(
        "--steps-per-epoch", metavar="N", help="also show epochs (a second axis and a column)"
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="draw the schedule into FILE (.png, .svg or .pdf; no suffix: .png is added; a directory: "
        "DIR/NAME.png); without --output only the table is printed",
    )
    parser.add_argument("--no-plot", action="store_true", help="print the table only (the default)")


def run(args: argparse.Namespace) -> int:
    if args.name is not None and args.config is not None:
        raise ConfigError("give a schedule NAME or --config FILE.toml, not both")
    if args.name is None and args.config is None:
        raise ConfigError(f"give a schedule NAME (one of: {', '.join(SCHEDULES)}) or --config FILE.toml")
    overrides = [_parse_override(text) for text in args.overrides]
    steps_per_epoch = (
        None if args.steps_per_epoch is None else _positive("--steps-per-epoch", args.steps_per_epoch)
    )
    if args.config is not None:
        lr, momentum, run_steps = _from_file(Path(args.config), overrides, steps_per_epoch)
    else:
        (lr, momentum), run_steps = _from_name(args.name, overrides), None
    note = ""
    if lr.needs_lr_finder:
        lr = lr.with_lr(1.0)  # type: ignore[attr-defined]
        note = "max_lr='auto' is chosen by the LR range test at training time; values shown for max_lr=1"
    if args.steps is not None:
        total = _positive("--steps", args.steps)
    else:
        total = run_steps if run_steps is not None else _default_steps(lr)

    output = None if args.output is None else plot_path(args.output, lr.call_name)
    if output is not None and args.no_plot:
        raise ConfigError("give --output FILE to draw the schedule or --no-plot, not both")
    _print_table(lr, momentum, total, steps_per_epoch, note)
    if output is not None:
        _plot(lr, momentum, total, steps_per_epoch, output, note)
        print(f"wrote {output}")
    return 0


def plot_path(output: str, name: str) -> Path:
    """The file ``--output`` names: a directory gets ``NAME.png`` inside, a name without suffix ``.png``."""
    path = Path(output)
    if path.is_dir():
        return path / f"{name}.png"
    if not path.suffix:
        return path.with_name(path.name + ".png")
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(
            f"--output {output}: cannot draw a {path.suffix} file; use one of {', '.join(PLOT_SUFFIXES)}"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--output {output}: {parent} is a file, not a directory")
            break
    return path


# ----------------------------------------------------------------------------------------------------------
# building the schedules


def _toml() -> Any:
    """``tomllib`` (Python >= 3.11) or its backport ``tomli``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise MissingDependencyError(
                "reading TOML on Python 3.10 needs the package 'tomli': pip install tomli"
            ) from None
    return tomllib


def _parse_value(text: str) -> Any:
    """A TOML value (number, bool, quoted string, array); anything else is taken as a bare string."""
    toml = _toml()
    try:
        return toml.loads(f"value = {text}")["value"]
    except toml.TOMLDecodeError:
        return text


def _parse_override(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. --set max_lr=0.1), got {text!r}")
    return key.strip(), _parse_value(value.strip())


def _positive(option: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} must be an integer >= 1, got {text!r}") from None
    return check_integer(option, value, low=1)


def _from_name(name: str, overrides: list[tuple[str, Any]]) -> tuple[Schedule, Schedule | None]:
    arguments = dict(overrides)
    momentum_arguments = {key: arguments.pop(key) for key in _MOMENTUM_KEYS if key in arguments}
    lr = from_config({"name": name, **arguments})
    if isinstance(lr, (OneCycle, Cyclic)):
        return lr, lr.momentum(**momentum_arguments)
    if momentum_arguments:
        raise ConfigError(
            f"{', '.join(momentum_arguments)} only apply to one_cycle and cyclic, not to {name!r}"
        )
    return lr, None


def _from_file(
    path: Path, overrides: list[tuple[str, Any]], steps_per_epoch: int | None
) -> tuple[Schedule, Schedule | None, int | None]:
    """The LR and momentum schedules of a config file, and the run's length in steps when it is known."""
    toml = _toml()
    if path.is_dir():
        raise ConfigError(f"--config {path}: is a directory; give a TOML file")
    try:
        document = toml.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config {path}: cannot read it ({error})") from None
    except toml.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    table = document.get("schedule", document)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [schedule] must be a table with a 'name', got {table!r}")
    if "lr" in table and isinstance(table["lr"], dict):
        lr_table = dict(table["lr"])
        momentum_table = dict(table["momentum"]) if isinstance(table.get("momentum"), dict) else None
    else:
        lr_table, momentum_table = dict(table), None
    if "name" not in lr_table:
        raise ConfigError(
            f"{path}: no schedule found; write a [schedule] table with name = one of {', '.join(SCHEDULES)}"
        )
    for key, value in overrides:
        prefix, _, rest = key.partition(".")
        if prefix == "momentum" and rest:
            if momentum_table is None:
                raise ConfigError(f"--set {key}: {path} has no [schedule.momentum] table")
            momentum_table[rest] = value
        else:
            lr_table[rest if prefix == "lr" and rest else key] = value
    tables = {"lr": lr_table} if momentum_table is None else {"lr": lr_table, "momentum": momentum_table}
    for target, schedule_table in tables.items():
        name = schedule_table.get("name")
        if not isinstance(name, str) or name not in SCHEDULES:
            raise ConfigError(
                f"{path}: the {target} schedule's name = {name!r} is not a schedule; "
                f"valid names: {', '.join(SCHEDULES)}"
            )
    run_steps = _run_steps(document.get("train"), steps_per_epoch)
    tables = _in_steps(path, tables, run_steps, steps_per_epoch)
    momentum = tables.get("momentum")
    lr = from_config(tables["lr"])
    return lr, (from_config(momentum) if momentum is not None else None), run_steps


def _run_steps(train: Any, steps_per_epoch: int | None) -> int | None:
    """``[train] total_steps``, or ``epochs × steps_per_epoch``; None when unknown."""
    train = train if isinstance(train, dict) else {}
    total = train.get("total_steps")
    if total is None and "epochs" in train and steps_per_epoch is not None:
        total = round(train["epochs"] * steps_per_epoch)
    return total if isinstance(total, int) and total > 0 else None


def _in_steps(
    path: Path, tables: dict[str, Any], total: int | None, steps_per_epoch: int | None
) -> dict[str, Any]:
    """Apply a training config's conventions: ``X_epochs`` keys and ``total_steps`` from ``[train]``.

    ``cadence train`` fills a schedule's missing ``total_steps`` with the run's length and converts
    ``*_epochs`` keys with the real steps per epoch; here both come from ``[train]`` and
    ``--steps-per-epoch``.
    """
    uses_epochs = any(
        key == "epochs" or key.endswith("_epochs") for table in tables.values() for key in table
    )
    lacks_total = any(
        "total_steps" in schedule_keys(table.get("name", ""))[0] and "total_steps" not in table
        for table in tables.values()
        if table.get("name") in SCHEDULES
    )
    if uses_epochs and steps_per_epoch is None:
        raise ConfigError(f"{path}: the schedule counts in epochs; pass --steps-per-epoch N to preview it")
    if lacks_total and total is None:
        raise ConfigError(
            f"{path}: the schedule takes total_steps from the run; set [train] total_steps, or pass "
            "--steps-per-epoch N with [train] epochs (or --set total_steps=N)"
        )
    if not (uses_epochs or lacks_total):
        return tables
    from cadence.config import schedule_configs

    return schedule_configs({"schedule": tables}, steps_per_epoch or 1, total or 0)


def _default_steps(schedule: Schedule) -> int:
    """The schedule's own length, or a few cycles of a cyclic one."""
    total = getattr(schedule, "total_steps", None)
    if isinstance(total, int):
        return total
    if isinstance(schedule, (Cyclic, CyclicMomentum)):
        down = schedule.step_size_up if schedule.step_size_down is None else schedule.step_size_down
        return 3 * (schedule.step_size_up + down)
    cycles = schedule.build() if isinstance(schedule, CosineRestarts) else schedule
    if isinstance(cycles, Repeat):
        return int(sum(cycles.cycle_length(index) for index in range(3)))
    if isinstance(schedule, RampSustainDecay):
        return schedule.ramp_steps + schedule.sustain_steps + math.ceil(10 * schedule.decay_steps)
    if math.isfinite(schedule.duration):
        return math.ceil(schedule.duration) + 1
    return 1000


# ----------------------------------------------------------------------------------------------------------
# output


def _table_steps(lr: Schedule, momentum: Schedule | None, total: int) -> list[int]:
    steps = set(lr.phase_boundaries(total))
    if momentum is not None:
        steps.update(momentum.phase_boundaries(total))
    cycle_ends = getattr(lr, "cycle_ends", None)
    if cycle_ends is not None:
        steps.update(cycle_ends(total))
    return sorted(steps)


def _print_table(
    lr: Schedule, momentum: Schedule | None, total: int, steps_per_epoch: int | None, note: str
) -> None:
    print(repr(lr))
    if momentum is not None:
        print(repr(momentum))
    if note:
        print(f"note: {note}")
    header = f"{'step':>9}" + (f" {'epoch':>9}" if steps_per_epoch else "") + f" {'lr':>13}"
    header += f" {'momentum':>9}" if momentum is not None else ""
    print(header)
    rows = _table_steps(lr, momentum, total)
    if len(rows) > MAX_ROWS:
        rows = [*rows[: MAX_ROWS // 2], -1, *rows[-MAX_ROWS // 2 :]]
    for step in rows:
        if step < 0:
            print(f"{'...':>9}")
            continue
        line = f"{step:>9}"
        if steps_per_epoch:
            line += f" {step / steps_per_epoch:>9.2f}"
        line += f" {lr(step):>13.6g}"
        if momentum is not None:
            line += f" {momentum(step):>9.4f}"
        print(line)
    sys.stdout.flush()


def _plot(
    lr: Schedule,
    momentum: Schedule | None,
    total: int,
    steps_per_epoch: int | None,
    output: Path,
    note: str,
) -> None:
    pyplot = require("matplotlib.pyplot", "plot", "drawing the schedule (or pass --no-plot)")
    pyplot.switch_backend("Agg")
    stride = max(1, math.ceil(total / MAX_POINTS))
    steps = sorted({*range(0, total, stride), *lr.phase_boundaries(total)})
    figure, axis = pyplot.subplots(figsize=(9, 4.8), layout="constrained")
    axis.plot(steps, [lr(step) for step in steps], color="tab:blue", label="lr")
    axis.set_xlabel("step")
    axis.set_ylabel("learning rate", color="tab:blue")
    axis.set_xlim(0, max(total - 1, 1))
    axis.grid(alpha=0.3)
    if momentum is not None:
        right = axis.twinx()
        right.plot(steps, [momentum(step) for step in steps], color="tab:orange", label="momentum")
        right.set_ylabel("momentum", color="tab:orange")
    if steps_per_epoch:
        top = axis.secondary_xaxis(
            "top", functions=(lambda step: step / steps_per_epoch, lambda epoch: epoch * steps_per_epoch)
        )
        top.set_xlabel("epoch")
    title = lr.call_name + (f" + {momentum.call_name}" if momentum is not None else "")
    axis.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    pyplot.close(figure)
