"""Where ``cadence.models.pretrained`` used to live; it is :mod:`cadence.transfer.pretrained` now.

Kept so that old imports work: importing this module issues a ``DeprecationWarning`` that names the new
path, and every name (also the private ones) is the new module's own object.
"""

from __future__ import annotations

from typing import Any

from cadence.errors import warn_moved
from cadence.transfer import pretrained as _new
from cadence.transfer.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocess,
    PretrainedClassifier,
    available_pretrained,
    create_pretrained,
    efficientnet_lite0,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImagePreprocess",
    "PretrainedClassifier",
    "available_pretrained",
    "create_pretrained",
    "efficientnet_lite0",
]

warn_moved("cadence.models.pretrained", "cadence.transfer.pretrained")


def __getattr__(name: str) -> Any:
    return getattr(_new, name)
