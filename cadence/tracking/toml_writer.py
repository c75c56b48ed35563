"""A small TOML writer for configs: nested dicts of strings, numbers, booleans and lists of those.

The standard library reads TOML (``tomllib``) but does not write it. Run directories store the resolved
config as ``config.toml`` so that ``cadence train run_dir/config.toml`` repeats the run; this module writes
exactly the subset our configs use. ``None`` values are left out (TOML has no null).

>>> print(dumps({"train": {"epochs": 3, "lr": 0.1}, "name": "a"}), end="")
name = "a"
<BLANKLINE>
[train]
epochs = 3
lr = 0.1
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["dump", "dumps"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(config: Mapping[str, Any]) -> str:
    """Return ``config`` as TOML text: scalars first, then one ``[table]`` per nested mapping."""
    lines: list[str] = []
    _write_table(config, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def dump(config: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``dumps(config)`` to ``path`` (UTF-8)."""
    path = Path(path)
    path.write_text(dumps(config), encoding="utf-8")
    return path


def _write_table(table: Mapping[str, Any], prefix: list[str], lines: list[str]) -> None:
    scalars = [(key, value) for key, value in table.items() if not isinstance(value, Mapping)]
    tables = [(key, value) for key, value in table.items() if isinstance(value, Mapping)]
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(part) for part in prefix) + "]")
    for key, value in scalars:
        if value is None:
            continue
        where = ".".join([*prefix, str(key)])
        lines.append(f"{_key(key)} = {_value(value, where)}")
    for key, value in tables:
        _write_table(value, [*prefix, str(key)], lines)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys must be strings, got {key!r}")
    if _BARE_KEY.match(key):
        return key
    return _string(key)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    escaped = "".join(
        character if ord(character) >= 0x20 else f"\\u{ord(character):04x}" for character in escaped
    )
    return f'"{escaped}"'


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Path):
        return _string(str(value))
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item, where) for item in value if item is not None) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{_key(key)} = {_value(item, where)}" for key, item in value.items() if item is not None
        )
        return "{ " + items + " }" if items else "{}"
    raise TypeError(
        f"config value at {where!r} cannot be written as TOML: {type(value).__name__} "
        "(allowed: str, int, float, bool, list, dict)"
    )
