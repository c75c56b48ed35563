"""Reading configs: TOML text and files, and ``--set section.key=value`` overrides."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.config.schema import SECTIONS, _hint
from cadence.config.validation import validate_config
from cadence.errors import ConfigError, MissingDependencyError


def _toml_module() -> Any:
    try:
        import tomllib

        return tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli

            return tomli
        except ModuleNotFoundError as error:
            raise MissingDependencyError(
                "reading TOML on Python 3.10 needs 'tomli': pip install tomli"
            ) from error


def parse_config(text: str, origin: str = "<config>") -> dict[str, Any]:
    """Parse TOML text into a dict; syntax errors become ConfigError naming ``origin``."""
    toml = _toml_module()
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: invalid TOML: {error}") from error


def _parse_value(text: str) -> Any:
    toml = _toml_module()
    try:
        return toml.loads(f"value = {text}")["value"]
    except toml.TOMLDecodeError:
        return text  # a bare word such as mlp or one_cycle


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with ``section.key=value`` overrides applied (values are TOML literals).

    Dotted keys create nested tables: ``schedule.lr.max_lr=0.1``, ``callbacks.swa.start=0.75``.
    """
    result = copy.deepcopy(dict(config))
    for override in overrides:
        path, separator, raw = override.partition("=")
        keys = [part.strip() for part in path.split(".")]
        if not separator or len(keys) < 2 or not all(keys):
            raise ConfigError(f"--set expects section.key=value (e.g. train.epochs=5), got {override!r}")
        if keys[0] not in SECTIONS:
            raise ConfigError(
                f"--set {override}: unknown section {keys[0]!r}{_hint(keys[0], SECTIONS)}; "
                f"valid sections: {', '.join(SECTIONS)}"
            )
        table = result
        for depth, key in enumerate(keys[:-1]):
            child = table.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {override}: {'.'.join(keys[: depth + 1])} is not a table")
            table = child
        table[keys[-1]] = _parse_value(raw.strip())
    return result


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a TOML config file, apply ``--set`` style overrides and check its structure."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path} not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from error
    config = apply_overrides(parse_config(text, str(path)), overrides)
    validate_config(config)
    return config
