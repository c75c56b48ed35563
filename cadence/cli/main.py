"""Entry point of the ``cadence`` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; modules
are imported only when their subcommand runs, so ``cadence --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from cadence.errors import ConfigError, MissingDependencyError

__all__ = ["main"]

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("cadence.cli.demo_cmd", "offline MNIST-1D demo: LR finder + four LR policies, 3 seeds, report"),
    "train": ("cadence.cli.train_cmd", "train from a TOML config"),
    "find-lr": ("cadence.cli.find_lr_cmd", "run the LR range test for a config and print its suggestions"),
    "schedule": ("cadence.cli.schedule_cmd", "preview a schedule: plot and values at phase boundaries"),
    "compare": ("cadence.cli.compare_cmd", "run configs over seeds (or read runs) and write a report"),
    "ensemble": ("cadence.cli.ensemble_cmd", "evaluate the snapshot ensemble of a finished run"),
    "config-help": ("cadence.cli.config_help_cmd", "list the config sections and keys, with defaults"),
    "completion": ("cadence.cli.completion_cmd", "print a bash or zsh completion script"),
}


#: subcommand -> the options (argparse destinations) that name a directory the command writes into
DIRECTORY_OPTIONS: dict[str, tuple[str, ...]] = {
    "demo": ("out",),
    "train": ("run_dir",),
    "find-lr": ("output",),
    "compare": ("out",),
}


class UsageError(ConfigError):
    """Bad command-line usage: printed as one line, exit code 2."""


def check_directory_option(option: str, value: str | Path) -> None:
    """Refuse an output directory that is a file, or lies below one, before anything is computed."""
    path = Path(value)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"lies below the file {candidate}"
                raise UsageError(f"{option} {value}: {where}; give a directory")
            return


def build_parser(load_subcommands: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cadence",
        description="Learning-rate and momentum policies for PyTorch, with the evidence that they help.",
    )
    from cadence import __version__

    parser.add_argument("--version", action="version", version=f"cadence {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == load_subcommands:
            importlib.import_module(module_name).add_arguments(subparser)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is not None and command not in SUBCOMMANDS:
        choices = ", ".join(SUBCOMMANDS)
        print(f"cadence: unknown command {command!r}; choose one of: {choices}", file=sys.stderr)
        return 2
    parser = build_parser(load_subcommands=command)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # report a mistyped option with the subcommand's usage, not the top-level one
            subparser = _subparser(parser, args.command)
            (subparser or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # --help, --version and usage errors (argparse printed the message)
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        for destination in DIRECTORY_OPTIONS.get(args.command, ()):
            value = getattr(args, destination, None)
            if value is not None:
                check_directory_option("--" + destination.replace("_", "-"), value)
        return int(module.run(args) or 0)
    except (ConfigError, MissingDependencyError, FileNotFoundError) as error:
        print(f"cadence {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path the user gave cannot be read or written
        detail = f"{error.strerror}: {error.filename}" if error.strerror and error.filename else str(error)
        print(f"cadence {args.command}: error: {detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cadence {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
