"""Explaining configs: the key reference generated from the schema, the resolved config and the dry-run plan.

Everything here is read off the one schema (:mod:`cadence.config.schema`), the registries and the defaults
of the functions a config's values are passed to, so the help text never repeats what the code says:

* :func:`config_reference` — every section, key, expected type or allowed values and default (what
  ``cadence train --help`` and ``cadence config-help`` print);
* :func:`resolved_config_text` — the config with every default filled in, as TOML that reads back into the
  same run (``cadence train CONFIG --print-config``);
* :func:`dry_run_plan` — the built experiment described: steps, the schedules' reprs, the LR selection
  plan (``cadence train CONFIG --dry-run``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.config.schema import (
    AUGMENT_KEYS,
    CALLBACKS,
    DATA_LOADER_KEYS,
    DISTRIBUTED_KEYS,
    LOGGER_KEYS,
    LR_SCALING_RULES,
    LR_SELECTION_KEYS,
    LR_SELECTION_SWEEP_KEYS,
    SCHEDULE_TARGETS,
    SECTIONS,
    STRATEGIES,
    TRAIN_KEYS,
    _choice,
    _positive_int,
    _positive_number,
    _toml_repr,
)
from cadence.errors import ConfigError
from cadence.schedules.base import needs_lr_finder

__all__ = [
    "GENERATED_END",
    "GENERATED_START",
    "config_reference",
    "config_reference_markdown",
    "dry_run_plan",
    "logger_defaults",
    "lr_selection_defaults",
    "resolved_config_text",
    "train_defaults",
    "with_generated_reference",
]

#: ``[model]`` keys the build fills in from the data (the dataset's classes and input shape).
_FROM_DATA = ("num_classes", "input_shape")

#: An object no check accepts: a check called on it returns the description of its valid values.
_NOTHING = object()

#: ``[data]`` loader keys -> (expected, default); the dataset's own options follow its loader's signature.
_DATA_LOADER_HELP: dict[str, tuple[str, Any]] = {
    "name": ("a dataset name (see below)", None),
    "augment": ("a table with " + ", ".join(AUGMENT_KEYS), None),
    "drop_last": ("true or false", False),
    "on_device": ("true or false", True),
}
_DISTRIBUTED_HELP: dict[str, tuple[str, Any]] = {
    "lr_scaling": (str(_choice(*LR_SCALING_RULES)(_NOTHING)), "linear (when the global batch changes)"),
    "base_batch_size": (str(_positive_int(_NOTHING)), "batch_size x accumulation_steps"),
    "warmup_steps": (str(_positive_int(_NOTHING)), None),
    "warmup_epochs": (str(_positive_int(_NOTHING)), None),
    "timeout_s": (str(_positive_number(_NOTHING)), 1800.0),
    "strategy": (str(_choice(*STRATEGIES)(_NOTHING)) + " (fsdp shards the model over the ranks)", "ddp"),
}


def _expected(check: Callable[[Any], str | None]) -> str:
    return check(_NOTHING) or "any value"


def logger_defaults(name: str) -> dict[str, Any]:
    """``[loggers.<name>]`` key -> the logger's default (``None``: unset)."""
    from cadence.tracking.loggers import LOGGERS

    parameters = inspect.signature(LOGGERS[name]).parameters
    return {
        key: None if parameters[key].default is inspect.Parameter.empty else parameters[key].default
        for key in LOGGER_KEYS[name]
    }


def train_defaults() -> dict[str, Any]:
    """``[train]`` key -> the default a run uses when the key is left out (``None``: unset)."""
    from cadence.config.fingerprint import resolved_config

    train = resolved_config({"data": {"name": "-"}, "model": {"name": "-"}})["train"]
    return {key: train.get(key) for key in TRAIN_KEYS}


def lr_selection_defaults() -> dict[str, Any]:
    """``[lr_selection]`` key -> the default of :func:`cadence.lr_finder.select_lr` (and of its sweep)."""
    from cadence.lr_finder.race import SWEEP_DEFAULTS, select_lr

    parameters = inspect.signature(select_lr).parameters
    defaults = {key: parameters[key].default for key in LR_SELECTION_KEYS if key in parameters}
    defaults.update({key: SWEEP_DEFAULTS[key] for key in LR_SELECTION_SWEEP_KEYS if key in SWEEP_DEFAULTS})
    return {key: defaults.get(key) for key in LR_SELECTION_KEYS}


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, (bool, str)) and not (isinstance(value, str) and " " in value):
        return _toml_repr(value)
    return str(value)


def _rows(rows: list[tuple[str, str, Any]]) -> list[str]:
    width = max((len(key) for key, _, _ in rows), default=0)
    return [f"  {key:<{width}}  {expected}; default {_shown(default)}" for key, expected, default in rows]


def _names_line(label: str, names: list[str]) -> str:
    return f"{label}: {', '.join(names)}"


def _signature_rows(factory: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[tuple[str, str, Any]]:
    rows = []
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.name in skip or parameter.name == "self":
            continue
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        default = None if parameter.default is inspect.Parameter.empty else parameter.default
        annotation = parameter.annotation
        kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "a value")
        rows.append((parameter.name, str(kind), default))
    return rows


#: One piece of a section's reference: ``("note", text)``, ``("rows", [(key, expected, default), ...])``,
#: ``("names", (header, header), [(name, text), ...])`` or ``("group", heading, [pieces])`` (a sub-table
#: such as ``[loggers.mlflow]``).
_Piece = tuple[Any, ...]


def _section_pieces(section: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    if section == "train":
        defaults = train_defaults()
        pieces.append(("note", "exactly one of epochs or total_steps"))
        pieces.append(("rows", [(key, _expected(check), defaults[key]) for key, check in TRAIN_KEYS.items()]))
    elif section == "lr_selection":
        pieces.append(("note", 'how max_lr = "auto" is chosen (cadence.lr_finder.select_lr)'))
        defaults = lr_selection_defaults()
        rows = [(key, _expected(check), defaults[key]) for key, check in LR_SELECTION_KEYS.items()]
        pieces.append(("rows", rows))
    elif section == "distributed":
        pieces.append(
            ("note", "LR scaling when the global batch differs from the one the config was tuned at")
        )
        pieces.append(("rows", [(key, *_DISTRIBUTED_HELP[key]) for key in DISTRIBUTED_KEYS]))
    elif section == "data":
        from cadence.data.registry import available_datasets

        pieces.append(("rows", [(key, *_DATA_LOADER_HELP[key]) for key in DATA_LOADER_KEYS]))
        pieces.append(("note", "other keys: the options of the dataset's loader (cadence.data.load)"))
        pieces.append(("note", _names_line("datasets", available_datasets())))
    elif section == "model":
        from cadence.models import available_models

        pieces.append(
            ("note", "name = a model; other keys: its options (num_classes, input_shape come from the data)")
        )
        pieces.append(("note", _names_line("models", available_models())))
    elif section == "optimizer":
        from cadence.optimizers import available_optimizers

        pieces.append(
            ("note", 'name = an optimizer (default "sgd"); other keys: its options (lr, momentum, ...)')
        )
        pieces.append(("note", _names_line("optimizers", available_optimizers())))
    elif section == "schedule":
        from cadence.schedules import SCHEDULES, schedule_keys

        pieces.append(
            (
                "note",
                "one schedule (name = ...) for the LR, or tables [schedule.<target>] for: "
                + ", ".join(SCHEDULE_TARGETS),
            )
        )
        pieces.append(
            ("note", "lengths may be given in epochs: X_epochs for X_steps or X (e.g. total_epochs)")
        )
        names = []
        for name in SCHEDULES:
            required, optional = schedule_keys(name)
            names.append((name, ", ".join([*required, *(f"[{key}]" for key in optional)])))
        pieces.append(("names", ("schedule", "keys ([optional])"), names))
    elif section == "loggers":
        from cadence.tracking.loggers import LOGGERS

        pieces.append(("note", "[loggers.<name>] tables: options of the trackers that train.loggers lists"))
        for name, keys in LOGGER_KEYS.items():
            heading = (
                f"[loggers.{name}]  (cadence.tracking.loggers.{LOGGERS[name].__name__}; "
                f"pip install 'cadence[{name}]')"
            )
            defaults = logger_defaults(name)
            rows = [(key, _expected(check), defaults[key]) for key, check in keys.items()]
            pieces.append(("group", heading, [("rows", rows)]))
    elif section == "callbacks":
        import importlib

        pieces.append(("note", "[callbacks.<name>] tables; enabled = false turns one off"))
        for name, target in CALLBACKS.items():
            heading = f"[callbacks.{name}]  ({target.replace(':', '.')})"
            try:
                module_name, class_name = target.split(":")
                callback_class = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):  # an optional extra is missing
                pieces.append(("group", heading, [("note", "(not available in this installation)")]))
                continue
            pieces.append(("group", heading, [("rows", _signature_rows(callback_class))]))
    return pieces


def _text_lines(pieces: list[_Piece], indent: str = "  ") -> list[str]:
    lines: list[str] = []
    for piece in pieces:
        if piece[0] == "note":
            lines.append(indent + piece[1])
        elif piece[0] == "rows":
            lines += [indent[2:] + row for row in _rows(piece[1])]
        elif piece[0] == "names":
            lines += [f"{indent}{name}: {text}" for name, text in piece[2]]
        else:
            lines.append(indent + piece[1])
            lines += _text_lines(piece[2], indent + "  ")
    return lines


def _section_lines(section: str) -> list[str]:
    return [f"[{section}]", *_text_lines(_section_pieces(section))]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def _markdown_lines(pieces: list[_Piece]) -> list[str]:
    lines: list[str] = []
    for piece in pieces:
        if piece[0] == "note":
            lines += [_cell(piece[1].strip()), ""]
        elif piece[0] == "rows":
            lines += ["| key | value | default |", "|---|---|---|"]
            lines += [
                f"| `{key}` | {_cell(expected)} | {_cell(_shown(default))} |"
                for key, expected, default in piece[1]
            ]
            lines.append("")
        elif piece[0] == "names":
            lines += [f"| {piece[1][0]} | {piece[1][1]} |", "|---|---|"]
            lines += [f"| `{name}` | {_cell(text)} |" for name, text in piece[2]]
            lines.append("")
        else:
            heading, _, source = piece[1].partition("  ")
            lines += [f"**`{heading}`** {_cell(source)}".rstrip(), ""]
            lines += _markdown_lines(piece[2])
    return lines


def config_reference(section: str | None = None) -> str:
    """The reference of every config section (or of ``section``): keys, expected values and defaults."""
    if section is not None and section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r}; valid sections: {', '.join(SECTIONS)}")
    sections = [section] if section else list(SECTIONS)
    blocks = ["\n".join(_section_lines(name)) for name in sections]
    return "\n\n".join(blocks) + "\n"


def config_reference_markdown() -> str:
    """:func:`config_reference` of every section as Markdown (the key reference of ``docs/config.md``)."""
    lines: list[str] = []
    for section in SECTIONS:
        lines += [f"### `[{section}]`", ""]
        lines += _markdown_lines(_section_pieces(section))
    return "\n".join(lines).rstrip("\n") + "\n"


#: The lines around the generated part of a Markdown file.
GENERATED_START = "<!-- generated:start (python -m cadence.config.describe --update docs/config.md) -->"
GENERATED_END = "<!-- generated:end -->"


def with_generated_reference(text: str) -> str:
    """``text`` (a Markdown file) with the part between the generated markers replaced by the reference."""
    before, start, rest = text.partition(GENERATED_START)
    _, end, after = rest.partition(GENERATED_END)
    if not start or not end:
        raise ValueError(f"the text has no {GENERATED_START!r} ... {GENERATED_END!r} block")
    return f"{before}{GENERATED_START}\n\n{config_reference_markdown()}\n{GENERATED_END}{after}"


def resolved_config_text(config: Mapping[str, Any]) -> str:
    """``config`` with every default filled in, as TOML; reading it back gives the same run (fingerprint).

    Defaults that are unset (no value) and the ``[lr_selection]`` defaults (used only when a schedule says
    ``max_lr = "auto"``) are written as comments, so the text states them without changing the run.
    """
    from cadence.config.fingerprint import resolved_config
    from cadence.tracking.toml_writer import dumps

    resolved = resolved_config(config)
    model = dict(resolved.get("model", {}))
    given = config.get("model", {})
    for key in _FROM_DATA:  # the build takes these from the data unless the config gives them
        if key not in given:
            model.pop(key, None)
    resolved["model"] = model
    for section, table in list(resolved.items()):  # each table's name first
        if isinstance(table, Mapping) and "name" in table:
            resolved[section] = {"name": table["name"], **{k: v for k, v in table.items() if k != "name"}}
    unset = {
        section: [key for key, value in table.items() if value is None]
        for section, table in resolved.items()
        if isinstance(table, Mapping)
    }
    text = dumps(resolved)
    lines = text.rstrip("\n").split("\n")
    output: list[str] = []
    current: str | None = None

    def close_section() -> None:
        if unset.get(current):
            output.append(f"# unset: {', '.join(unset[current])}")

    for line in lines:
        if line.startswith("[") and line.endswith("]"):
            blank = bool(output) and output[-1] == ""
            if blank:
                output.pop()
            close_section()
            if blank:
                output.append("")
            current = line[1:-1]
        output.append(line)
    close_section()
    if "lr_selection" not in resolved:
        defaults = lr_selection_defaults()
        output += ["", '# [lr_selection] defaults (they apply when a schedule has max_lr = "auto"):']
        output += [f"# {key} = {_toml_repr(value)}" for key, value in defaults.items() if value is not None]
    return "\n".join(output) + "\n"


def dry_run_plan(experiment: Any) -> list[str]:
    """What a run of the built ``experiment`` would do, one line each (nothing is trained)."""
    from cadence.config.build import lr_selection_options

    config = experiment.config
    data, model = experiment.data, experiment.model
    parameters = sum(parameter.numel() for parameter in model.parameters())
    train_size = len(data.train.targets) if data is not None else "?"
    test_size = len(data.test.targets) if data is not None else "?"
    options = experiment.trainer_options
    lines = [
        f"data: {config['data']['name']} ({train_size} train, {test_size} test examples)",
        f"model: {config['model']['name']} ({type(model).__name__}, {parameters} parameters)",
        f"optimizer: {type(experiment.optimizer).__name__} "
        f"({len(experiment.optimizer.param_groups)} parameter group(s))",
        f"steps: {experiment.total_steps} ({experiment.steps_per_epoch} per epoch, "
        f"accumulation {options.get('accumulation_steps', 1)})",
        f"device: {options['device']}, precision {options.get('precision', 'fp32')}",
    ]
    for target, schedule in experiment.schedules.items():
        lines.append(f"schedule {target}: {schedule!r}")
    if not experiment.schedules:
        lines.append("schedule: none (the optimizer's values stay constant)")
    for callback in experiment.callbacks:
        lines.append(f"callback: {type(callback).__name__}")
    auto = [target for target, schedule in experiment.schedules.items() if needs_lr_finder(schedule)]
    if auto:
        selection = {**lr_selection_defaults(), **lr_selection_options(config)}
        sweep = selection.pop("sweep_options", {})
        for key in LR_SELECTION_SWEEP_KEYS:
            if key in sweep:
                selection[key] = sweep[key]
        if selection["method"] == "race":
            race_steps = round(selection["budget"] * experiment.total_steps)
            plan = (
                f"a sweep of {selection['num_steps']} steps from {selection['start_lr']:g} to "
                f"{selection['end_lr']:g}, then a race of {selection['candidates']} candidates over "
                f"~{race_steps} steps in all (budget {selection['budget']:g}), "
                f"{selection['val_fraction']:g} of the training data held out"
            )
        else:
            plan = (
                f"a sweep of {selection['num_steps']} steps from {selection['start_lr']:g} to "
                f"{selection['end_lr']:g}, the {selection['rule']} rule"
            )
        lines.append(f"lr selection ({', '.join(auto)} = auto): {plan}")
    else:
        lines.append('lr selection: none (no schedule has max_lr = "auto")')
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cadence.config.describe [--markdown | --update FILE]``: print or rewrite the reference."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cadence.config.describe", description=main.__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--markdown", action="store_true", help="print the reference as Markdown tables")
    group.add_argument(
        "--update",
        metavar="FILE",
        type=Path,
        help="rewrite the generated block of FILE (e.g. docs/config.md)",
    )
    args = parser.parse_args(argv)
    if args.update is not None:
        text = args.update.read_text(encoding="utf-8")
        args.update.write_text(with_generated_reference(text), encoding="utf-8")
    else:
        print(config_reference_markdown() if args.markdown else config_reference(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
