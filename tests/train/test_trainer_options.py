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


# -- TrainerOptions: the table as one typed value ------------------------------------------------------------


def test_trainer_options_are_the_table_with_the_trainers_defaults():
    import dataclasses

    from cadence.train.options import TrainerOptions

    parameters = inspect.signature(Trainer).parameters
    fields = dataclasses.fields(TrainerOptions)
    assert [item.name for item in fields] == list(TOML_OPTIONS)
    for item in fields:
        assert item.default == parameters[item.name].default, item.name
        assert item.type == parameters[item.name].annotation, item.name
    assert TrainerOptions().as_kwargs() == {name: parameters[name].default for name in TOML_OPTIONS}


def _tiny(**keywords):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, optimizer, nn.functional.cross_entropy, batches, device="cpu", **keywords)


def test_trainer_takes_its_options_as_one_value():
    from cadence.train.options import TrainerOptions

    options = TrainerOptions(total_steps=5, seed=3, keep_checkpoints=4, progress=False, grad_clip=0.5)
    trainer = _tiny(options=options)
    assert (trainer.total_steps, trainer.seed, trainer.keep_checkpoints, trainer.grad_clip) == (5, 3, 4, 0.5)
    assert trainer.progress is False
    plain = _tiny(total_steps=5, seed=3, keep_checkpoints=4, progress=False, grad_clip=0.5)
    assert plain.fit().step == trainer.fit().step == 5
    # a keyword and an option may each set what the other leaves at its default, or agree
    both = _tiny(options=TrainerOptions(seed=3, progress=False), total_steps=5, seed=3)
    assert (both.total_steps, both.seed) == (5, 3)
    with pytest.raises(ConfigError, match=r"seed is given twice, seed=1 and options\.seed=3"):
        _tiny(options=TrainerOptions(total_steps=5, seed=3), seed=1)
    with pytest.raises(ConfigError, match="total_steps must be a positive integer"):
        _tiny(options=TrainerOptions(total_steps=0))


def test_trainer_options_from_a_table_use_the_tables_checks():
    from cadence.train.options import TrainerOptions

    options = TrainerOptions.from_mapping({"epochs": 2, "precision": "bf16", "loggers": ["mlflow"]})
    assert (options.epochs, options.precision, options.loggers) == (2, "bf16", ["mlflow"])
    assert options.seed == 0
    with pytest.raises(ConfigError, match=r"unknown option 'batch_size'; valid options: epochs, total_steps"):
        TrainerOptions.from_mapping({"batch_size": 4})
    with pytest.raises(
        ConfigError, match=r'on_divergence must be one of "stop", "raise", got on_divergence=\'x\''
    ):
        TrainerOptions.from_mapping({"on_divergence": "x"})


def test_an_unknown_lr_selection_option_is_refused_when_the_trainer_is_built():
    import torch
    from torch import nn

    model = nn.Linear(2, 2)
    with pytest.raises(
        ConfigError, match=r"lr_selection: unknown option 'sweep'; expected one of method, budget"
    ):
        Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            nn.functional.cross_entropy,
            [(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))],
            total_steps=1,
            lr_selection={"sweep": {"num_steps": 10}},
        )
