"""cadence: learning-rate and momentum policies for PyTorch, with the evidence that they help.

The most used names are here; each area has its own module with the rest:
``cadence.schedules``, ``cadence.lr_finder``, ``cadence.callbacks``, ``cadence.regularization``,
``cadence.ensembles``, ``cadence.param_groups``, ``cadence.freezing``, ``cadence.distributed``,
``cadence.data``, ``cadence.models``, ``cadence.tracking``.
"""

from cadence.ensembles import Ensemble
from cadence.freezing import freeze_, unfreeze_
from cadence.hyperparams import set_hyperparams
from cadence.lr_finder import LRFinderResult, find_lr
from cadence.param_groups import discriminative_lrs, layer_groups
from cadence.precision import Precision
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
from cadence.train.callback import Callback
from cadence.train.state import TrainState
from cadence.train.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "Ensemble",
    "LRFinderResult",
    "LRSchedulerAdapter",
    "Precision",
    "Schedule",
    "TrainState",
    "Trainer",
    "__version__",
    "cosine_restarts",
    "cyclic",
    "cyclic_momentum",
    "discriminative_lrs",
    "find_lr",
    "freeze_",
    "from_config",
    "layer_groups",
    "one_cycle",
    "one_cycle_momentum",
    "ramp_sustain_decay",
    "scaled_lr",
    "set_hyperparams",
    "snapshot_cosine",
    "to_config",
    "unfreeze_",
    "warmup_cosine",
]
