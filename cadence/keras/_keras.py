"""The one place :mod:`cadence.keras` imports Keras, with the message that says how to install it."""

from __future__ import annotations

from cadence.errors import MissingDependencyError

try:
    import keras
except ModuleNotFoundError as error:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("cadence.keras needs Keras 3: pip install 'cadence[keras]'") from error

__all__ = ["keras"]
