"""Where ``cadence.fine_tune`` used to live; it is :mod:`cadence.transfer.fine_tune` now.

Kept so that old imports work: importing this module issues a ``DeprecationWarning`` that names the new
path, and every name (also the private ones) is the new module's own object.

``cadence.fine_tune`` is also the recipe function on the package. Importing this module makes Python set
the package's attribute to the module, so the module is callable and forwards to the function: code that
calls ``cadence.fine_tune(...)`` works whether or not something imported the old module first.
"""

from __future__ import annotations

import sys
import types
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


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`cadence.transfer.fine_tune.fine_tune`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return fine_tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
