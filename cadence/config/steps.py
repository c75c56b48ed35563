"""Lengths in epochs -> steps, and the ``[schedule]`` section as schedule configs in steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cadence.config.schema import _hint, _is_number, _table, _toml_repr, _unknown_key
from cadence.errors import ConfigError


def epochs_to_steps(
    options: Mapping[str, Any], valid_keys: Sequence[str], steps_per_epoch: int, where: str
) -> dict[str, Any]:
    """Replace ``X_epochs`` keys by the step key they stand for, multiplied by ``steps_per_epoch``.

    ``X_epochs`` becomes ``X_steps`` or ``X`` (whichever ``valid_keys`` has; ``total_epochs`` ->
    ``total_steps``, ``epochs`` -> ``steps``, ``step_size_up_epochs`` -> ``step_size_up``,
    ``cycle_epochs`` -> ``cycle_steps``), rounded to whole steps. Keys that are valid as they are stay.
    Lists of numbers (e.g. ``boundaries_epochs``) are converted element by element.
    """
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key in valid_keys or not (key == "epochs" or key.endswith("_epochs")):
            result[key] = value
            continue
        base = key[: -len("epochs")].rstrip("_")
        candidates = [f"{base}_steps", base] if base else ["steps"]
        target = next((candidate for candidate in candidates if candidate in valid_keys), None)
        if target is None:
            raise _unknown_key(where, key, list(valid_keys))
        if target in options:
            raise ConfigError(f"{where}: give {key} or {target}, not both")

        def convert(epochs: Any, name: str = key) -> int:
            if not _is_number(epochs) or epochs < 0:
                raise ConfigError(f"{where}.{name} = {_toml_repr(epochs)}: expected a number of epochs >= 0")
            return round(epochs * steps_per_epoch)

        result[target] = [convert(item) for item in value] if isinstance(value, list) else convert(value)
    return result


def _schedule_from_table(
    table: Mapping[str, Any], where: str, steps_per_epoch: int, total_steps: int
) -> dict[str, Any]:
    """Convert epoch keys (recursively for nested schedules) and fill a missing ``total_steps``."""
    from cadence.schedules import SCHEDULES, schedule_keys

    if "name" not in table:
        raise ConfigError(f"{where} needs a name; valid names: {', '.join(SCHEDULES)}")
    name = table["name"]
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ConfigError(
            f"{where}.name = {_toml_repr(name)}: unknown schedule{_hint(str(name), list(SCHEDULES))}; "
            f"valid names: {', '.join(SCHEDULES)}"
        )
    required, optional = schedule_keys(name)
    valid = ["name", *required, *optional]
    converted = epochs_to_steps(table, valid, steps_per_epoch, where)
    for key in converted:
        if key not in valid:
            raise _unknown_key(where, key, valid)
    for key, value in list(converted.items()):
        if isinstance(value, Mapping) and "name" in value:
            converted[key] = _schedule_from_table(value, f"{where}.{key}", steps_per_epoch, total_steps)
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            converted[key] = [
                _schedule_from_table(item, f"{where}.{key}[{index}]", steps_per_epoch, total_steps)
                for index, item in enumerate(value)
            ]
    if "total_steps" in required and "total_steps" not in converted:
        converted["total_steps"] = total_steps
    return converted


def schedule_configs(
    config: Mapping[str, Any], steps_per_epoch: int, total_steps: int
) -> dict[str, dict[str, Any] | float]:
    """The ``[schedule]`` section as ``{"lr": schedule config or number, "momentum": ..., ...}`` in steps."""
    schedule = _table(config, "schedule")
    if not schedule:
        return {}
    tables = {"lr": schedule} if "name" in schedule else schedule
    result: dict[str, dict[str, Any] | float] = {}
    for target, table in tables.items():
        where = "schedule" if "name" in schedule else f"schedule.{target}"
        if _is_number(table):
            result[target] = float(table)
        else:
            result[target] = _schedule_from_table(table, where, steps_per_epoch, total_steps)
    return result
