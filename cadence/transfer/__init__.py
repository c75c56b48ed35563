"""Transfer learning: start from a trained network and adapt it to a new task.

The techniques (plain functions and small objects, usable in a hand-written loop; they never import the
Trainer):

- :mod:`cadence.transfer.param_groups`: layer groups of a model and discriminative (per-group) LRs;
- :mod:`cadence.transfer.freezing`: freezing and unfreezing layer groups (``train_bn``), and how several
  freezing techniques compose;
- :mod:`cadence.transfer.features`: precomputed features of a frozen body;
- :mod:`cadence.transfer.pretrained`: pretrained backbones with a new head (``efficientnet-lite0``,
  ``torchvision:<name>``, ``timm:<name>``).

The recipe, which runs the Trainer: :mod:`cadence.transfer.fine_tune` (``fine_tune``: the head on the frozen
body, then everything with discriminative LRs, as one fit). Gradual unfreezing is a Trainer callback, so it
lives with the others: :class:`cadence.callbacks.GradualUnfreezing`.

Importing this package loads nothing: each name below is imported from its module on first use (PEP 562),
and no name here imports the Trainer (``fine_tune`` is imported from its module).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the technique module that defines it
_EXPORTS: dict[str, str] = {
    "FeatureSet": "cadence.transfer.features",
    "LayerGroup": "cadence.transfer.param_groups",
    "PretrainedClassifier": "cadence.transfer.pretrained",
    "create_pretrained": "cadence.transfer.pretrained",
    "discriminative_lrs": "cadence.transfer.param_groups",
    "freeze_": "cadence.transfer.freezing",
    "layer_groups": "cadence.transfer.param_groups",
    "precompute_features": "cadence.transfer.features",
    "set_trainable_": "cadence.transfer.freezing",
    "unfreeze_": "cadence.transfer.freezing",
}

__all__ = [
    "FeatureSet",
    "LayerGroup",
    "PretrainedClassifier",
    "create_pretrained",
    "discriminative_lrs",
    "freeze_",
    "layer_groups",
    "precompute_features",
    "set_trainable_",
    "unfreeze_",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cadence.transfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from cadence.transfer.features import FeatureSet, precompute_features
    from cadence.transfer.freezing import freeze_, set_trainable_, unfreeze_
    from cadence.transfer.param_groups import LayerGroup, discriminative_lrs, layer_groups
    from cadence.transfer.pretrained import PretrainedClassifier, create_pretrained
