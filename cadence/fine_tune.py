"""Where ``cadence.fine_tune`` used to live; it is :mod:`cadence.transfer.fine_tune` now.

Kept so that old imports work: importing this module issues a ``DeprecationWarning`` that names the new
path, and every name (also the private ones) is the new module's own object.
"""

from __future__ import annotations

from typing import Any

from cadence.errors import warn_moved
from cadence.transfer import fine_tune as _new
from cadence.transfer.fine_tune import (
    fine_tune,
    fine_tune_groups,
    fine_tune_plan,
)

__all__ = [
    "fine_tune",
    "fine_tune_groups",
    "fine_tune_plan",
]

warn_moved("cadence.fine_tune", "cadence.transfer.fine_tune")


def __getattr__(name: str) -> Any:
    return getattr(_new, name)
