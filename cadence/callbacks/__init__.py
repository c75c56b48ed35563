"""Built-in callbacks for :class:`cadence.Trainer`.

Each one only calls cadence's plain functions (schedules, freezing, averaging, mixing) from the Trainer's
hooks, so the same technique also works in a hand-written loop.
"""

from cadence.callbacks.averaging import EMA, SWA
from cadence.callbacks.early_stopping import EarlyStopping
from cadence.callbacks.freezeout import FreezeOut
from cadence.callbacks.lr_scaling import RecordLRScaling
from cadence.callbacks.mixup import Mixup
from cadence.callbacks.progress import ProgressBar
from cadence.callbacks.snapshot import SnapshotEnsemble
from cadence.callbacks.unfreezing import GradualUnfreezing
from cadence.train.callback import Callback

__all__ = [
    "EMA",
    "SWA",
    "Callback",
    "EarlyStopping",
    "FreezeOut",
    "GradualUnfreezing",
    "Mixup",
    "ProgressBar",
    "RecordLRScaling",
    "SnapshotEnsemble",
]
