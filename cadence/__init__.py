"""cadence: learning-rate and momentum policies for PyTorch, with the evidence that they help.

The most used names are here; each area has its own module with the rest:
``cadence.schedules``, ``cadence.lr_finder``, ``cadence.callbacks``, ``cadence.regularization``,
``cadence.ensembles``, ``cadence.param_groups``, ``cadence.freezing``, ``cadence.distributed``,
``cadence.data``, ``cadence.models``, ``cadence.tracking``.
"""

from cadence import callbacks
from cadence.ensembles import Ensemble, evaluate_ensemble, greedy_select
from cadence.errors import ConfigError, DivergenceError
from cadence.features import precompute_features
from cadence.fine_tune import fine_tune
from cadence.freezing import freeze_, freezeout_param_groups, unfreeze_
from cadence.hyperparams import set_hyperparams
from cadence.lr_finder import LRFinderResult, LRSelection, find_lr, select_lr
from cadence.param_groups import LayerGroup, discriminative_lrs, layer_groups
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

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "ConfigError",
    "DivergenceError",
    "Ensemble",
    "LRFinderResult",
    "LRSchedulerAdapter",
    "LRSelection",
    "LayerGroup",
    "Precision",
    "Schedule",
    "TrainState",
    "Trainer",
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
