"""TOML experiment configs: load, override, validate, build and run.

A config has the sections ``[data] [model] [optimizer] [schedule] [train] [callbacks.<name>] [distributed]``::

    [data]
    name = "mnist1d"              # a cadence.data dataset; other keys are its options (subset, ...)
    augment = { crop_padding = 4, flip = true }   # loader options: augment, drop_last, on_device

    [model]
    name = "cnn1d"                # any cadence.models name; num_classes / input_shape come from the data

    [optimizer]
    name = "sgd"
    momentum = 0.9
    weight_decay = 5e-4

    [schedule]                    # the LR schedule; or [schedule.lr] and [schedule.momentum] tables
    name = "one_cycle"
    max_lr = 0.1                  # or "auto": the LR range test picks it
    # total_steps defaults to the run's length; lengths may be given in epochs instead of steps:
    # total_epochs, step_size_up_epochs, cycle_epochs, ... (``X_epochs`` -> ``X_steps`` or ``X``)

    [train]
    epochs = 10
    batch_size = 128

Command-line overrides ``--set section.key=value`` parse ``value`` as a TOML literal (``0.1``, ``true``,
``"text"``, ``[1, 2]``); a value that is not valid TOML is taken as a string, so ``--set model.name=mlp``
works. Every unknown section or key and every bad value raises :class:`~cadence.errors.ConfigError` naming
the key and the valid choices (the CLI prints it on one line and exits with code 2).
"""

from __future__ import annotations

# ``name as name`` imports: importable from cadence.config as well, though not in __all__.
from cadence.config.build import Experiment, build_experiment
from cadence.config.parsing import apply_overrides, load_config, parse_config
from cadence.config.run import build_trainer, run_config, trainer_for
from cadence.config.schema import AUGMENT_KEYS as AUGMENT_KEYS
from cadence.config.schema import CALLBACKS, SECTIONS
from cadence.config.schema import DATA_LOADER_KEYS as DATA_LOADER_KEYS
from cadence.config.schema import DISTRIBUTED_KEYS as DISTRIBUTED_KEYS
from cadence.config.schema import DIVERGENCE_MODES as DIVERGENCE_MODES
from cadence.config.schema import LOSSES as LOSSES
from cadence.config.schema import LR_SCALING_RULES as LR_SCALING_RULES
from cadence.config.schema import PRECISIONS as PRECISIONS
from cadence.config.schema import PROGRESS_MODES as PROGRESS_MODES
from cadence.config.schema import SCHEDULE_TARGETS as SCHEDULE_TARGETS
from cadence.config.schema import TRAIN_DEFAULTS as TRAIN_DEFAULTS
from cadence.config.schema import TRAIN_KEYS as TRAIN_KEYS
from cadence.config.steps import epochs_to_steps
from cadence.config.steps import schedule_configs as schedule_configs
from cadence.config.validation import validate_config

__all__ = [
    "CALLBACKS",
    "SECTIONS",
    "Experiment",
    "apply_overrides",
    "build_experiment",
    "build_trainer",
    "epochs_to_steps",
    "load_config",
    "parse_config",
    "run_config",
    "trainer_for",
    "validate_config",
]
