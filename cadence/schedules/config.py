"""Schedules to and from plain dicts (TOML tables, JSON), e.g. ``{"name": "one_cycle", "max_lr": 0.1, ...}``.

``from_config(to_config(s)) == s`` for every recipe, primitive and combinator. Children of combinators are
nested dicts. A custom ``scale_fn`` (a Python callable) cannot be stored; use a named ``mode`` instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cadence.errors import ConfigError
from cadence.schedules.base import REGISTRY, Schedule
from cadence.schedules.combinators import Join, Product, Repeat, Scaled, Sequence, Shift, Truncate, Warmup
from cadence.schedules.primitives import Constant, Cosine, Exponential, Geometric, Linear, Polynomial
from cadence.schedules.recipes import (
    CYCLIC_MODES,
    CosineRestarts,
    Cyclic,
    CyclicMomentum,
    OneCycle,
    OneCycleMomentum,
    RampSustainDecay,
    SnapshotCosine,
    WarmupCosine,
)

__all__ = ["SCHEDULES", "from_config", "schedule_keys", "to_config"]

#: config name -> schedule class (recipes first: they are what users usually write). It is the registry of
#: :mod:`cadence.schedules.base`: a class declared ``config=True`` anywhere (a new recipe) joins it, after
#: the built-in ones, with no edit here.
_BUILT_IN: dict[str, type[Schedule]] = {
    cls.call_name: cls
    for cls in (
        OneCycle,
        OneCycleMomentum,
        Cyclic,
        CyclicMomentum,
        CosineRestarts,
        SnapshotCosine,
        WarmupCosine,
        RampSustainDecay,
        Constant,
        Linear,
        Cosine,
        Geometric,
        Exponential,
        Polynomial,
        Join,
        Sequence,
        Warmup,
        Repeat,
        Truncate,
        Product,
        Shift,
        Scaled,
    )
}
_registered = {name: cls for name, cls in REGISTRY.items() if name not in _BUILT_IN}
REGISTRY.clear()
REGISTRY.update({**_BUILT_IN, **_registered})
SCHEDULES: dict[str, type[Schedule]] = REGISTRY

_SCALE_FN_MESSAGE = (
    "scale_fn cannot be stored in a config (it is a Python callable); use mode = one of "
    + ", ".join(repr(mode) for mode in CYCLIC_MODES)
    + " or build the schedule in Python"
)


def schedule_keys(name: str) -> tuple[list[str], list[str]]:
    """``(required, optional)`` config keys of schedule ``name``."""
    cls = _lookup(name)
    required, optional = [], []
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not item.init:
            continue
        missing = dataclasses.MISSING
        has_default = not (item.default is missing and item.default_factory is missing)
        (optional if has_default else required).append(item.name)
    return required, optional


def _lookup(name: Any) -> type[Schedule]:
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule name {name!r}; valid names: {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


def to_config(schedule: Schedule) -> dict[str, Any]:
    """A plain dict (str, numbers, bools, lists, nested dicts) that :func:`from_config` turns back."""
    if not isinstance(schedule, Schedule) or schedule.call_name not in SCHEDULES:
        raise ConfigError(f"only cadence schedules can be stored in a config, got {schedule!r}")
    config: dict[str, Any] = {"name": schedule.call_name}
    for key, value in schedule.arguments().items():
        if key == "scale_fn" and value is not None:
            raise ConfigError(_SCALE_FN_MESSAGE)
        if value is None:
            continue  # None is the default wherever it is allowed; TOML has no null
        config[key] = _to_plain(value)
    return config


def _to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return to_config(value)
    if isinstance(value, (tuple, list)):
        return [_to_plain(item) for item in value]
    return value


def from_config(config: Mapping[str, Any]) -> Schedule:
    """Build a schedule from ``{"name": ..., **arguments}``; nested dicts with a ``name`` become schedules.

    Raises :class:`~cadence.errors.ConfigError` for an unknown name (listing the valid ones), unknown or
    missing keys (listing the valid ones) and invalid values (naming the field and its allowed range).
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a schedule config must be a table/dict with a 'name', got {config!r}")
    if "name" not in config:
        raise ConfigError(f"a schedule config needs a 'name'; valid names: {', '.join(SCHEDULES)}")
    name = config["name"]
    cls = _lookup(name)
    required, optional = schedule_keys(name)
    arguments = {key: value for key, value in config.items() if key != "name"}
    unknown = [key for key in arguments if key not in required and key not in optional]
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} for schedule {name!r}; "
            f"valid keys: {', '.join(required + optional)}"
        )
    missing = [key for key in required if key not in arguments]
    if missing:
        raise ConfigError(
            f"missing key(s) {', '.join(map(repr, missing))} for schedule {name!r}; "
            f"required keys: {', '.join(required)}"
        )
    if arguments.get("scale_fn") is not None:
        raise ConfigError(_SCALE_FN_MESSAGE)
    return cls(**{key: _from_plain(value) for key, value in arguments.items()})


def _from_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return from_config(value)
    if isinstance(value, list):
        return tuple(_from_plain(item) for item in value)
    return value
