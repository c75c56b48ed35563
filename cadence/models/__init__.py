"""Models by name: ``create("cnn1d")``, ``create("cnn28")``, ``create("mlp", input_size=40)``, ...

Built-in names: ``cnn1d``, ``cnn28``, ``mlp``, ``resnet-small`` (see :mod:`cadence.models.small`).
Pretrained backbones (``efficientnet-lite0``, ``torchvision:<name>``, ``timm:<name>``) live in
``cadence.transfer.pretrained``, which is imported only when such a name is asked for. Other code adds names
with :func:`register_model`. Any ``nn.Module`` works with the rest of cadence; names only matter for configs.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from cadence.errors import ConfigError
from cadence.models.small import cnn1d, cnn28, mlp, resnet_small

__all__ = ["available_models", "create", "model_options", "register_model"]

ModelFactory = Callable[..., nn.Module]

_FACTORIES: dict[str, ModelFactory] = {
    "cnn1d": cnn1d,
    "cnn28": cnn28,
    "mlp": mlp,
    "resnet-small": resnet_small,
}
_PRETRAINED_NAMES = ("efficientnet-lite0",)
_PRETRAINED_PREFIXES = ("torchvision:", "timm:")


def register_model(name: str, factory: ModelFactory) -> None:
    """Make ``create(name, **options)`` call ``factory(**options)``.

    A name ending in ``":"`` (e.g. ``"timm:"``) registers a prefix: ``create("timm:resnet18")`` then calls
    ``factory("resnet18", **options)``.
    """
    _FACTORIES[name] = factory


def available_models() -> list[str]:
    """Registered names (prefix families end with ``:``)."""
    _load_pretrained()
    return sorted(_FACTORIES)


def _load_pretrained() -> None:
    try:
        importlib.import_module("cadence.transfer.pretrained")
    except ModuleNotFoundError as error:
        if error.name != "cadence.transfer.pretrained":
            raise


def _find(name: str) -> tuple[ModelFactory, tuple[Any, ...]] | None:
    if name in _FACTORIES:
        return _FACTORIES[name], ()
    prefix, separator, rest = name.partition(":")
    if separator and f"{prefix}:" in _FACTORIES:
        return _FACTORIES[f"{prefix}:"], (rest,)
    return None


def _lookup(name: str) -> tuple[ModelFactory, tuple[Any, ...]]:
    found = _find(name)
    if found is None and (name in _PRETRAINED_NAMES or name.startswith(_PRETRAINED_PREFIXES)):
        _load_pretrained()  # registers its names on import
        found = _find(name)
    if found is not None:
        return found
    names = available_models()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown model {name!r}{hint}; choose one of: {', '.join(names)}")


def model_options(name: str) -> list[str] | None:
    """Keyword options the factory of ``name`` accepts, or None when it accepts any (``**options``)."""
    factory, positional = _lookup(name)
    parameters = list(inspect.signature(factory).parameters.values())[len(positional) :]
    if any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def create(name: str, **options: Any) -> nn.Module:
    """Build model ``name``; an unknown name or option raises ConfigError listing the valid ones."""
    factory, positional = _lookup(name)
    valid = model_options(name)
    if valid is not None:
        unknown = [key for key in options if key not in valid]
        if unknown:
            close = difflib.get_close_matches(unknown[0], valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown option {unknown[0]!r} for model {name!r}{hint}; valid options: {', '.join(valid)}"
            )
    try:
        return factory(*positional, **options)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"model {name!r}: {error}") from error
