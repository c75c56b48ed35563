"""The Trainer, its state, its callback hooks and its checkpoints."""

from cadence.train.callback import HOOKS, Callback
from cadence.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from cadence.train.evaluation import accuracy, evaluate_model
from cadence.train.options import TrainerOptions
from cadence.train.state import TrainState
from cadence.train.trainer import Trainer

__all__ = [
    "HOOKS",
    "Callback",
    "CheckpointError",
    "TrainState",
    "Trainer",
    "TrainerOptions",
    "accuracy",
    "evaluate_model",
    "latest_checkpoint",
    "load_checkpoint",
]
