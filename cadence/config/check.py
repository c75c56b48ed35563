"""Checking a config is buildable without building it: no data is loaded and nothing is trained.

:func:`check_config` looks every name and key of ``[data] [model] [optimizer] [schedule] [callbacks]`` and
``train.device`` up in the registries that :func:`~cadence.config.build_experiment` uses, so that a command
which starts many runs (``cadence compare``) can refuse a bad config before spending anything on it. The
steps per epoch are not known without the data; schedule and callback lengths given in epochs are checked
with :data:`ASSUMED_STEPS_PER_EPOCH`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from cadence.config.schema import CALLBACKS, DATA_LOADER_KEYS, _table
from cadence.config.validation import validate_config
from cadence.errors import ConfigError

__all__ = ["ASSUMED_STEPS_PER_EPOCH", "check_config", "check_device"]

#: Steps per epoch assumed when checking lengths given in epochs (the real value needs the data).
ASSUMED_STEPS_PER_EPOCH = 100


def check_device(text: Any, option: str = "train.device") -> None:
    """Refuse a device string torch cannot parse, or an accelerator this machine does not have."""
    import torch

    if text == "auto":
        return
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{option} must be a device name such as cpu, cuda, cuda:0 or mps, got {text!r}")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"{option} = {text!r}: not a device; use cpu, cuda, cuda:N or mps (or auto in configs)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} = {text!r}: CUDA is not available on this machine; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{option} = {text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise ConfigError(f"{option} = {text!r}: MPS is not available on this machine; use cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{option} = {text!r}: unsupported device type; use cpu, cuda, cuda:N or mps")


def _prefixed(where: str, error: ConfigError) -> ConfigError:
    message = str(error)
    return ConfigError(message if message.startswith(f"[{where}]") else f"[{where}] {message}")


def _check_data(data: Mapping[str, Any]) -> None:
    from cadence.data import registry

    name = data["name"]
    if not isinstance(name, str):
        raise ConfigError(f"data.name must be a dataset name, got {name!r}")
    loader = registry._resolve(name)  # unknown names raise, listing the valid ones
    if any(p.kind == p.VAR_KEYWORD for p in inspect.signature(loader).parameters.values()):
        return
    valid = registry.dataset_options(name)
    for key in data:
        if key not in DATA_LOADER_KEYS and key not in valid:
            raise ConfigError(
                f"unknown key data.{key} for dataset {name!r}; valid keys: "
                f"{', '.join([*DATA_LOADER_KEYS, *valid])}"
            )


def _check_model(model: Mapping[str, Any]) -> None:
    from cadence import models

    name = model["name"]
    if not isinstance(name, str):
        raise ConfigError(f"model.name must be a model name, got {name!r}")
    accepted = models.model_options(name)
    if accepted is None:
        return
    for key in model:
        if key != "name" and key not in accepted:
            raise ConfigError(
                f"unknown key model.{key} for model {name!r}; valid keys: {', '.join(accepted)}"
            )


def _check_optimizer(optimizer: dict[str, Any]) -> None:
    import torch

    from cadence import optimizers

    name = optimizer.pop("name", "sgd")
    if not isinstance(name, str):
        raise ConfigError(f"optimizer.name must be an optimizer name, got {name!r}")
    optimizers.create(name, torch.nn.Linear(1, 1), **optimizer)


def _check_schedules(config: Mapping[str, Any], total_steps: int) -> None:
    from cadence.config.steps import schedule_configs
    from cadence.schedules import from_config

    tables = schedule_configs(config, ASSUMED_STEPS_PER_EPOCH, total_steps)
    for table in tables.values():
        if not isinstance(table, float):
            from_config(table)


def _check_callbacks(config: Mapping[str, Any]) -> None:
    from cadence.config.build import _build_callback

    for name, options in _table(config, "callbacks").items():
        if name in CALLBACKS and options.get("enabled", True) is not False:
            try:
                _build_callback(name, options, ASSUMED_STEPS_PER_EPOCH)
            except ConfigError as error:
                raise _prefixed(f"callbacks.{name}", error) from None


def check_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for anything :func:`build_experiment` would refuse that needs no data.

    Checks the structure (:func:`validate_config`), the dataset name and options, the model name and
    options, the optimizer name and options, every schedule, every enabled callback and ``train.device``.
    """
    validate_config(config)
    train = _table(config, "train")
    for where, check in (
        ("data", lambda: _check_data(_table(config, "data"))),
        ("model", lambda: _check_model(_table(config, "model"))),
        ("optimizer", lambda: _check_optimizer(_table(config, "optimizer"))),
    ):
        try:
            check()
        except ConfigError as error:
            raise _prefixed(where, error) from None
    total_steps = train.get("total_steps") or train["epochs"] * ASSUMED_STEPS_PER_EPOCH
    try:
        _check_schedules(config, total_steps)
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith("schedule") else f"[schedule] {message}") from None
    _check_callbacks(config)
    check_device(train.get("device", "auto"))
