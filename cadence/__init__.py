"""cadence: learning-rate and momentum policies for PyTorch, with the evidence that they help.

The most used names are here; each area has its own module with the rest:
``cadence.schedules``, ``cadence.lr_finder``, ``cadence.callbacks``, ``cadence.regularization``,
``cadence.ensembles``, ``cadence.transfer`` (transfer learning), ``cadence.freezing`` (FreezeOut's plan),
``cadence.distributed``, ``cadence.data``, ``cadence.models``, ``cadence.tracking``.

Importing the package is cheap: ``from cadence import __version__`` loads neither torch nor any module of
the library. Every other name below is imported from its module the first time it is used (PEP 562), so
``cadence --help`` answers without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it (``callbacks`` is the subpackage itself)
_EXPORTS: dict[str, str] = {
    "Callback": "cadence.train",
    "ConfigError": "cadence.errors",
    "DivergenceError": "cadence.errors",
    "Ensemble": "cadence.ensembles",
    "HyperparamPipeline": "cadence.hyperparams",
    "LRFinderResult": "cadence.lr_finder",
    "LRSchedulerAdapter": "cadence.schedules",
    "LRSelection": "cadence.lr_finder",
    "LayerGroup": "cadence.transfer.param_groups",
    "Precision": "cadence.precision",
    "Schedule": "cadence.schedules",
    "TrainState": "cadence.train",
    "Trainer": "cadence.train",
    "TrainerOptions": "cadence.train",
    "callbacks": "cadence.callbacks",
    "cosine_restarts": "cadence.schedules",
    "cutmix_batch": "cadence.regularization",
    "cyclic": "cadence.schedules",
    "cyclic_momentum": "cadence.schedules",
    "discriminative_lrs": "cadence.transfer.param_groups",
    "evaluate_ensemble": "cadence.ensembles",
    "evaluate_model": "cadence.train",
    "find_lr": "cadence.lr_finder",
    "fine_tune": "cadence.transfer.fine_tune",
    "freeze_": "cadence.transfer.freezing",
    "freezeout_param_groups": "cadence.freezing",
    "from_config": "cadence.schedules",
    "greedy_select": "cadence.ensembles",
    "hyperparams_at": "cadence.hyperparams",
    "layer_groups": "cadence.transfer.param_groups",
    "mixup_batch": "cadence.regularization",
    "one_cycle": "cadence.schedules",
    "one_cycle_momentum": "cadence.schedules",
    "one_hot": "cadence.regularization",
    "precompute_features": "cadence.transfer.features",
    "ramp_sustain_decay": "cadence.schedules",
    "scaled_lr": "cadence.schedules",
    "select_lr": "cadence.lr_finder",
    "set_hyperparams": "cadence.hyperparams",
    "snapshot_cosine": "cadence.schedules",
    "soft_cross_entropy": "cadence.regularization",
    "to_config": "cadence.schedules",
    "unfreeze_": "cadence.transfer.freezing",
    "warmup_cosine": "cadence.schedules",
}

__all__ = [
    "Callback",
    "ConfigError",
    "DivergenceError",
    "Ensemble",
    "HyperparamPipeline",
    "LRFinderResult",
    "LRSchedulerAdapter",
    "LRSelection",
    "LayerGroup",
    "Precision",
    "Schedule",
    "TrainState",
    "Trainer",
    "TrainerOptions",
    "__version__",
    "callbacks",
    "cosine_restarts",
    "cutmix_batch",
    "cyclic",
    "cyclic_momentum",
    "discriminative_lrs",
    "evaluate_ensemble",
    "evaluate_model",
    "find_lr",
    "fine_tune",
    "freeze_",
    "freezeout_param_groups",
    "from_config",
    "greedy_select",
    "hyperparams_at",
    "layer_groups",
    "mixup_batch",
    "one_cycle",
    "one_cycle_momentum",
    "one_hot",
    "precompute_features",
    "ramp_sustain_decay",
    "scaled_lr",
    "select_lr",
    "set_hyperparams",
    "snapshot_cosine",
    "soft_cross_entropy",
    "to_config",
    "unfreeze_",
    "warmup_cosine",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cadence' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name == "callbacks" else getattr(module, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from cadence import callbacks
    from cadence.ensembles import Ensemble, evaluate_ensemble, greedy_select
    from cadence.errors import ConfigError, DivergenceError
    from cadence.freezing import freezeout_param_groups
    from cadence.hyperparams import HyperparamPipeline, hyperparams_at, set_hyperparams
    from cadence.lr_finder import LRFinderResult, LRSelection, find_lr, select_lr
    from cadence.precision import Precision
    from cadence.regularization import cutmix_batch, mixup_batch, one_hot, soft_cross_entropy
    from cadence.schedules import (
        LRSchedulerAdapter,
        Schedule,
        cosine_restarts,
        cyclic,
        cyclic_momentum,
        from_config,
        one_cycle,
        one_cycle_momentum,
        ramp_sustain_decay,
        scaled_lr,
        snapshot_cosine,
        to_config,
        warmup_cosine,
    )
    from cadence.train import Callback, Trainer, TrainState, evaluate_model
    from cadence.transfer.features import precompute_features
    from cadence.transfer.fine_tune import fine_tune
    from cadence.transfer.freezing import freeze_, unfreeze_
    from cadence.transfer.param_groups import LayerGroup, discriminative_lrs, layer_groups
