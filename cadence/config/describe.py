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
from collections.abc import Callable, Mapping
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

__all__ = [
    "config_reference",
    "dry_run_plan",
    "logger_defaults",
    "lr_selection_defaults",
    "resolved_config_text",
    "train_defaults",
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
    return f"  {label}: {', '.join(names)}"


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


def _section_lines(section: str) -> list[str]:
    lines = [f"[{section}]"]
    if section == "train":
        defaults = train_defaults()
        lines.append("  exactly one of epochs or total_steps")
        lines += _rows([(key, _expected(check), defaults[key]) for key, check in TRAIN_KEYS.items()])
    elif section == "lr_selection":
        lines.append('  how max_lr = "auto" is chosen (cadence.lr_finder.select_lr)')
        defaults = lr_selection_defaults()
        lines += _rows([(key, _expected(check), defaults[key]) for key, check in LR_SELECTION_KEYS.items()])
    elif section == "distributed":
        lines.append("  LR scaling when the global batch differs from the one the config was tuned at")
        lines += _rows([(key, *_DISTRIBUTED_HELP[key]) for key in DISTRIBUTED_KEYS])
    elif section == "data":
        from cadence.data.registry import available_datasets

        lines += _rows([(key, *_DATA_LOADER_HELP[key]) for key in DATA_LOADER_KEYS])
        lines.append("  other keys: the options of the dataset's loader (cadence.data.load)")
        lines.append(_names_line("datasets", available_datasets()))
    elif section == "model":
        from cadence.models import available_models

        lines.append(
            "  name = a model; other keys: its options (num_classes, input_shape come from the data)"
        )
        lines.append(_names_line("models", available_models()))
    elif section == "optimizer":
        from cadence.optimizers import available_optimizers

        lines.append('  name = an optimizer (default "sgd"); other keys: its options (lr, momentum, ...)')
        lines.append(_names_line("optimizers", available_optimizers()))
    elif section == "schedule":
        from cadence.schedules import SCHEDULES, schedule_keys

        lines.append(
            "  one schedule (name = ...) for the LR, or tables [schedule.<target>] for: "
            + ", ".join(SCHEDULE_TARGETS)
        )
        lines.append("  lengths may be given in epochs: X_epochs for X_steps or X (e.g. total_epochs)")
        for name in SCHEDULES:
            required, optional = schedule_keys(name)
            keys = ", ".join([*required, *(f"[{key}]" for key in optional)])
            lines.append(f"  {name}: {keys}")
    elif section == "loggers":
        from cadence.tracking.loggers import LOGGERS

        lines.append("  [loggers.<name>] tables: options of the trackers that train.loggers lists")
        for name, keys in LOGGER_KEYS.items():
            lines.append(
                f"  [loggers.{name}]  (cadence.tracking.loggers.{LOGGERS[name].__name__}; "
                f"pip install 'cadence[{name}]')"
            )
            defaults = logger_defaults(name)
            rows = [(key, _expected(check), defaults[key]) for key, check in keys.items()]
            lines += ["  " + row for row in _rows(rows)]
    elif section == "callbacks":
        lines.append("  [callbacks.<name>] tables; enabled = false turns one off")
        for name, target in CALLBACKS.items():
            lines.append(f"  [callbacks.{name}]  ({target.replace(':', '.')})")
            try:
                import importlib

                module_name, class_name = target.split(":")
                callback_class = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):  # an optional extra is missing
                lines.append("    (not available in this installation)")
                continue
            lines += ["  " + row for row in _rows(_signature_rows(callback_class))]
    return lines


def config_reference(section: str | None = None) -> str:
    """The reference of every config section (or of ``section``): keys, expected values and defaults."""
    if section is not None and section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r}; valid sections: {', '.join(SECTIONS)}")
    sections = [section] if section else list(SECTIONS)
    blocks = ["\n".join(_section_lines(name)) for name in sections]
    return "\n\n".join(blocks) + "\n"


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
    auto = [
        target
        for target, schedule in experiment.schedules.items()
        if getattr(schedule, "needs_lr_finder", False)
    ]
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
