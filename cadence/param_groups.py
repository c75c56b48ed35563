"""Where ``cadence.param_groups`` used to live; it is :mod:`cadence.transfer.param_groups` now.

Kept so that old imports work: importing this module issues a ``DeprecationWarning`` that names the new
path, and every name (also the private ones) is the new module's own object.
"""

from __future__ import annotations

from typing import Any

from cadence.errors import warn_moved
from cadence.transfer import param_groups as _new
from cadence.transfer.param_groups import (
    NORM_TYPES,
    LayerGroup,
    discriminative_lrs,
    layer_groups,
    unit_modules,
)

__all__ = [
    "NORM_TYPES",
    "LayerGroup",
    "discriminative_lrs",
    "layer_groups",
    "unit_modules",
]

warn_moved("cadence.param_groups", "cadence.transfer.param_groups")


def __getattr__(name: str) -> Any:
    return getattr(_new, name)
