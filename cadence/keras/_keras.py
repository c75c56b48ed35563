"""The one place :mod:`cadence.keras` imports Keras, with the message that says how to install it."""

from __future__ import annotations

from cadence.errors import MissingDependencyError

try:
    import keras
except ModuleNotFoundError as error:
    if error.name != "keras":  # Keras is there but its backend is not (e.g. KERAS_BACKEND=jax without jax)
        raise
    raise MissingDependencyError("cadence.keras needs Keras 3: pip install 'cadence[keras]'") from error

__all__ = ["keras"]
