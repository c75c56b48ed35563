"""Structural validation of a config: sections, keys and values, with suggestions for misspelt names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cadence.config.schema import (
    AUGMENT_KEYS,
    CALLBACKS,
    DISTRIBUTED_KEYS,
    LOGGER_KEYS,
    LR_SCALING_RULES,
    LR_SELECTION_KEYS,
    SCHEDULE_TARGETS,
    SECTIONS,
    STRATEGIES,
    TRAIN_KEYS,
    _choice,
    _hint,
    _is_number,
    _positive_number,
    _table,
    _toml_repr,
    _unknown_key,
)
from cadence.errors import ConfigError


def validate_config(config: Mapping[str, Any]) -> None:
    """Check sections, ``[train]``, ``[distributed]``, loader and callback keys without building anything.

    Dataset, model, optimizer and schedule options are checked when they are built (the registries know
    their valid keys); :func:`build_experiment` does that.
    """
    for section in config:
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}]{_hint(section, SECTIONS)}; "
                f"valid sections: {', '.join(SECTIONS)}"
            )
    for section in ("data", "model"):
        if section not in config:
            raise ConfigError(f"the config needs a [{section}] section with a name")
        if "name" not in _table(config, section):
            raise ConfigError(f"[{section}] needs a name")
    train = _table(config, "train")
    for key, value in train.items():
        if key not in TRAIN_KEYS:
            raise _unknown_key("train", key, list(TRAIN_KEYS))
        problem = TRAIN_KEYS[key](value)
        if problem:
            raise ConfigError(f"train.{key} = {_toml_repr(value)}: expected {problem}")
    if ("epochs" in train) == ("total_steps" in train):
        raise ConfigError("[train] needs exactly one of epochs or total_steps")
    data = _table(config, "data")
    augment = data.get("augment")
    if augment is not None:
        if not isinstance(augment, Mapping):
            raise ConfigError(
                f"data.augment must be a table like {{ crop_padding = 4, flip = true }}, got {augment!r}"
            )
        for key in augment:
            if key not in AUGMENT_KEYS:
                raise _unknown_key("data.augment", key, AUGMENT_KEYS)
    for key in ("drop_last", "on_device"):
        if key in data and not isinstance(data[key], bool):
            raise ConfigError(f"data.{key} = {_toml_repr(data[key])}: expected true or false")
    distributed = _table(config, "distributed")
    for key in distributed:
        if key not in DISTRIBUTED_KEYS:
            raise _unknown_key("distributed", key, DISTRIBUTED_KEYS)
    if "lr_scaling" in distributed and (problem := _choice(*LR_SCALING_RULES)(distributed["lr_scaling"])):
        raise ConfigError(
            f"distributed.lr_scaling = {_toml_repr(distributed['lr_scaling'])}: expected {problem}"
        )
    if "strategy" in distributed and (problem := _choice(*STRATEGIES)(distributed["strategy"])):
        raise ConfigError(
            f"distributed.strategy = {_toml_repr(distributed['strategy'])}: expected {problem} ('ddp' "
            "replicates the model on every rank, 'fsdp' shards it; see docs/distributed.md)"
        )
    if "timeout_s" in distributed and (problem := _positive_number(distributed["timeout_s"])):
        raise ConfigError(
            f"distributed.timeout_s = {_toml_repr(distributed['timeout_s'])}: expected {problem}"
        )
    for key, value in _table(config, "lr_selection").items():
        if key not in LR_SELECTION_KEYS:
            raise _unknown_key("lr_selection", key, list(LR_SELECTION_KEYS))
        if problem := LR_SELECTION_KEYS[key](value):
            raise ConfigError(f"lr_selection.{key} = {_toml_repr(value)}: expected {problem}")
    listed = train.get("loggers", [])
    for name, options in _table(config, "loggers").items():
        if name not in LOGGER_KEYS:
            raise ConfigError(
                f"unknown logger [loggers.{name}]{_hint(name, list(LOGGER_KEYS))}; "
                f"valid loggers: {', '.join(LOGGER_KEYS)}"
            )
        if not isinstance(options, Mapping):
            raise ConfigError(f"[loggers.{name}] must be a table of options, got {options!r}")
        if name not in listed:
            raise ConfigError(
                f"[loggers.{name}] is given but train.loggers does not list {name!r}; "
                f"add it: loggers = [{', '.join(_toml_repr(item) for item in [*listed, name])}]"
            )
        for key, value in options.items():
            if key not in LOGGER_KEYS[name]:
                raise _unknown_key(f"loggers.{name}", key, list(LOGGER_KEYS[name]))
            if problem := LOGGER_KEYS[name][key](value):
                raise ConfigError(f"loggers.{name}.{key} = {_toml_repr(value)}: expected {problem}")
    callbacks = _table(config, "callbacks")
    for name, options in callbacks.items():
        if name not in CALLBACKS:
            raise ConfigError(
                f"unknown callback [callbacks.{name}]{_hint(name, list(CALLBACKS))}; "
                f"valid callbacks: {', '.join(CALLBACKS)}"
            )
        if not isinstance(options, Mapping):
            raise ConfigError(f"[callbacks.{name}] must be a table of options, got {options!r}")
    schedule = _table(config, "schedule")
    if schedule and "name" not in schedule:
        for key, value in schedule.items():
            if key not in SCHEDULE_TARGETS:
                raise ConfigError(
                    f"unknown key schedule.{key}{_hint(key, [*SCHEDULE_TARGETS, 'name'])}; [schedule] holds "
                    f"one schedule (name = ...) or tables for: {', '.join(SCHEDULE_TARGETS)}"
                )
            if not isinstance(value, Mapping) and not _is_number(value):
                raise ConfigError(f"schedule.{key} must be a table with a name or a number, got {value!r}")
