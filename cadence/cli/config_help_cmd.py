"""``cadence config-help [SECTION]``: the config sections and keys, with expected values and defaults.

The text is generated from the config schema (:func:`cadence.config.describe.config_reference`), the same
text that ends ``cadence train --help``.
"""

from __future__ import annotations

import argparse

from cadence.config.schema import SECTIONS

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "section",
        nargs="?",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"one section ({', '.join(SECTIONS)}); default: all",
    )


def run(args: argparse.Namespace) -> int:
    from cadence.config.describe import config_reference

    print(config_reference(args.section), end="")
    return 0
