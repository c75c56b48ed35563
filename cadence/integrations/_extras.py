"""The optional packages of the integrations, imported only when an integration module is."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise an ImportError that names ``pip install 'cadence[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this cadence integration needs the optional package {module!r}, which is not installed: "
            f"pip install 'cadence[{extra}]'"
        ) from error
