"""The Trainer's TOML options come from one table (cadence.train.options.TOML_OPTIONS).

Exposing a Trainer option to configs is the keyword argument plus its row there (docs/architecture.md): the
config schema, its checks, ``--set`` overrides and the fingerprint's defaults all read the table.
"""

from __future__ import annotations

import inspect

import pytest

from cadence.config import apply_overrides, build_experiment, parse_config, validate_config
from cadence.config.schema import TRAIN_KEYS
from cadence.errors import ConfigError
from cadence.train.options import TOML_OPTIONS
from cadence.train.trainer import Trainer

CONFIG = """
[data]
name = "synthetic"
num_train = 32
num_test = 16
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[optimizer]
name = "sgd"

[schedule]
name = "constant"
value = 0.1

[train]
epochs = 1
batch_size = 16
progress = "off"
device = "cpu"
"""


def test_every_toml_option_is_a_trainer_argument_and_a_train_key():
    parameters = inspect.signature(Trainer).parameters
    assert [name for name in TOML_OPTIONS if name not in parameters] == []
    assert all(name in TRAIN_KEYS and TRAIN_KEYS[name] is check for name, check in TOML_OPTIONS.items())


def test_an_option_set_in_toml_reaches_the_trainer():
    from cadence.config.run import trainer_for

    config = apply_overrides(parse_config(CONFIG), ["train.keep_checkpoints=5", "train.grad_clip=0.5"])
    validate_config(config)
    trainer = trainer_for(build_experiment(config))
    assert (trainer.keep_checkpoints, trainer.grad_clip) == (5, 0.5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.keep_checkpoints=0", "train.keep_checkpoints = 0: expected a whole number >= 1"),
        ("train.on_divergence=ignore", 'expected one of "stop", "raise"'),
        ("train.compile=1", "train.compile = 1: expected true, false or a table"),
    ],
)
def test_a_bad_option_value_names_the_key_and_the_valid_values(override, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(apply_overrides(parse_config(CONFIG), [override]))
