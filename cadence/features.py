"""Where ``cadence.features`` used to live; it is :mod:`cadence.transfer.features` now.

Kept so that old imports work: importing this module issues a ``DeprecationWarning`` that names the new
path, and every name (also the private ones) is the new module's own object.
"""

from __future__ import annotations

from typing import Any

from cadence.errors import warn_moved
from cadence.transfer import features as _new
from cadence.transfer.features import (
    FeatureSet,
    fingerprint,
    precompute_features,
)

__all__ = [
    "FeatureSet",
    "fingerprint",
    "precompute_features",
]

warn_moved("cadence.features", "cadence.transfer.features")


def __getattr__(name: str) -> Any:
    return getattr(_new, name)
