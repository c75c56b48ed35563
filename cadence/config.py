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

import copy
import dataclasses
import difflib
import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from cadence.errors import ConfigError, MissingDependencyError

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

SECTIONS = ("data", "model", "optimizer", "schedule", "train", "callbacks", "distributed")

#: Callback names in ``[callbacks.<name>]`` -> "module:Class", imported only when used.
CALLBACKS: dict[str, str] = {
    "snapshot_ensemble": "cadence.callbacks.snapshot:SnapshotEnsemble",
    "swa": "cadence.callbacks.averaging:SWA",
    "ema": "cadence.callbacks.averaging:EMA",
    "mixup": "cadence.callbacks.mixup:Mixup",
    "freezeout": "cadence.callbacks.freezeout:FreezeOut",
    "gradual_unfreezing": "cadence.callbacks.unfreezing:GradualUnfreezing",
    "early_stopping": "cadence.callbacks.early_stopping:EarlyStopping",
}

#: ``[data]`` keys consumed by the loader; every other key is an option of ``cadence.data.load``.
DATA_LOADER_KEYS = ("name", "augment", "drop_last", "on_device")
AUGMENT_KEYS = ("crop_padding", "flip", "cutout", "padding_mode")
SCHEDULE_TARGETS = ("lr", "momentum", "weight_decay")
DISTRIBUTED_KEYS = ("lr_scaling", "base_batch_size", "warmup_steps", "warmup_epochs")
LR_SCALING_RULES = ("none", "linear", "sqrt")
PRECISIONS = ("fp32", "bf16", "fp16")
DIVERGENCE_MODES = ("stop", "raise")
PROGRESS_MODES = ("auto", "bar", "lines", "off", True, False)
LOSSES = ("cross_entropy",)


# -- value checks ------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "a whole number >= 1"


def _non_negative_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "a whole number >= 0"


def _positive_number(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "a number > 0"


def _fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty string"


def _choice(*choices: Any) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return None
        return "one of " + ", ".join(_toml_repr(choice) for choice in choices)

    return check


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


#: ``[train]`` key -> check returning None when valid, else a description of the valid values.
TRAIN_KEYS: dict[str, Callable[[Any], str | None]] = {
    "epochs": _positive_int,
    "total_steps": _positive_int,
    "batch_size": _positive_int,
    "eval_batch_size": _positive_int,
    "seed": _non_negative_int,
    "label_smoothing": _fraction,
    "precision": _choice(*PRECISIONS),
    "grad_clip": _positive_number,
    "accumulation_steps": _positive_int,
    "device": _string,
    "checkpoint_every_steps": _positive_int,
    "checkpoint_every_epochs": _positive_int,
    "keep_checkpoints": _positive_int,
    "eval_every_epochs": _positive_int,
    "progress": _choice(*PROGRESS_MODES),
    "on_divergence": _choice(*DIVERGENCE_MODES),
    "channels_last": _boolean,
    "compile": _boolean,
    "csv": _boolean,
    "tensorboard": _boolean,
    "name": _string,
    "loss": _choice(*LOSSES),
}
TRAIN_DEFAULTS: dict[str, Any] = {"batch_size": 128, "eval_batch_size": 1024, "seed": 0}


def _hint(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(where: str, key: str, choices: Sequence[str]) -> ConfigError:
    return ConfigError(f"unknown key {where}.{key}{_hint(key, choices)}; valid keys: {', '.join(choices)}")


def _table(config: Mapping[str, Any], section: str) -> dict[str, Any]:
    value = config.get(section, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{section}] must be a table (section), got {value!r}")
    return dict(value)


# -- loading and overrides ---------------------------------------------------------------------------------


def _toml_module() -> Any:
    try:
        import tomllib

        return tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli

            return tomli
        except ModuleNotFoundError as error:
            raise MissingDependencyError(
                "reading TOML on Python 3.10 needs 'tomli': pip install tomli"
            ) from error


def parse_config(text: str, origin: str = "<config>") -> dict[str, Any]:
    """Parse TOML text into a dict; syntax errors become ConfigError naming ``origin``."""
    toml = _toml_module()
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: invalid TOML: {error}") from error


def _parse_value(text: str) -> Any:
    toml = _toml_module()
    try:
        return toml.loads(f"value = {text}")["value"]
    except toml.TOMLDecodeError:
        return text  # a bare word such as mlp or one_cycle


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with ``section.key=value`` overrides applied (values are TOML literals).

    Dotted keys create nested tables: ``schedule.lr.max_lr=0.1``, ``callbacks.swa.start=0.75``.
    """
    result = copy.deepcopy(dict(config))
    for override in overrides:
        path, separator, raw = override.partition("=")
        keys = [part.strip() for part in path.split(".")]
        if not separator or len(keys) < 2 or not all(keys):
            raise ConfigError(f"--set expects section.key=value (e.g. train.epochs=5), got {override!r}")
        if keys[0] not in SECTIONS:
            raise ConfigError(
                f"--set {override}: unknown section {keys[0]!r}{_hint(keys[0], SECTIONS)}; "
                f"valid sections: {', '.join(SECTIONS)}"
            )
        table = result
        for depth, key in enumerate(keys[:-1]):
            child = table.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {override}: {'.'.join(keys[: depth + 1])} is not a table")
            table = child
        table[keys[-1]] = _parse_value(raw.strip())
    return result


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a TOML config file, apply ``--set`` style overrides and check its structure."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path} not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from error
    config = apply_overrides(parse_config(text, str(path)), overrides)
    validate_config(config)
    return config


# -- structural validation ---------------------------------------------------------------------------------


def validate_config(config: Mapping[str, Any]) -> None:
    """Check sections, ``[train]``, ``[distributed]``, loader and callback keys without building anything.

    Dataset, model, optimizer and schedule options are checked when they are built (the registries know
    their valid keys); :func:`build_experiment` does that.
    """
    for section in config:
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}]{_hint(section, SECTIONS)}; "
                f"valid sections: {', '.join(SECTIONS)}"
            )
    for section in ("data", "model"):
        if section not in config:
            raise ConfigError(f"the config needs a [{section}] section with a name")
        if "name" not in _table(config, section):
            raise ConfigError(f"[{section}] needs a name")
    train = _table(config, "train")
    for key, value in train.items():
        if key not in TRAIN_KEYS:
            raise _unknown_key("train", key, list(TRAIN_KEYS))
        problem = TRAIN_KEYS[key](value)
        if problem:
            raise ConfigError(f"train.{key} = {_toml_repr(value)}: expected {problem}")
    if ("epochs" in train) == ("total_steps" in train):
        raise ConfigError("[train] needs exactly one of epochs or total_steps")
    data = _table(config, "data")
    augment = data.get("augment")
    if augment is not None:
        if not isinstance(augment, Mapping):
            raise ConfigError(
                f"data.augment must be a table like {{ crop_padding = 4, flip = true }}, got {augment!r}"
            )
        for key in augment:
            if key not in AUGMENT_KEYS:
                raise _unknown_key("data.augment", key, AUGMENT_KEYS)
    for key in ("drop_last", "on_device"):
        if key in data and not isinstance(data[key], bool):
            raise ConfigError(f"data.{key} = {_toml_repr(data[key])}: expected true or false")
    distributed = _table(config, "distributed")
    for key in distributed:
        if key not in DISTRIBUTED_KEYS:
            raise _unknown_key("distributed", key, DISTRIBUTED_KEYS)
    if "lr_scaling" in distributed and (problem := _choice(*LR_SCALING_RULES)(distributed["lr_scaling"])):
        raise ConfigError(
            f"distributed.lr_scaling = {_toml_repr(distributed['lr_scaling'])}: expected {problem}"
        )
    callbacks = _table(config, "callbacks")
    for name, options in callbacks.items():
        if name not in CALLBACKS:
            raise ConfigError(
                f"unknown callback [callbacks.{name}]{_hint(name, list(CALLBACKS))}; "
                f"valid callbacks: {', '.join(CALLBACKS)}"
            )
        if not isinstance(options, Mapping):
            raise ConfigError(f"[callbacks.{name}] must be a table of options, got {options!r}")
    schedule = _table(config, "schedule")
    if schedule and "name" not in schedule:
        for key, value in schedule.items():
            if key not in SCHEDULE_TARGETS:
                raise ConfigError(
                    f"unknown key schedule.{key}{_hint(key, [*SCHEDULE_TARGETS, 'name'])}; [schedule] holds "
                    f"one schedule (name = ...) or tables for: {', '.join(SCHEDULE_TARGETS)}"
                )
            if not isinstance(value, Mapping) and not _is_number(value):
                raise ConfigError(f"schedule.{key} must be a table with a name or a number, got {value!r}")


# -- epochs -> steps ---------------------------------------------------------------------------------------


def epochs_to_steps(
    options: Mapping[str, Any], valid_keys: Sequence[str], steps_per_epoch: int, where: str
) -> dict[str, Any]:
    """Replace ``X_epochs`` keys by the step key they stand for, multiplied by ``steps_per_epoch``.

    ``X_epochs`` becomes ``X_steps`` or ``X`` (whichever ``valid_keys`` has; ``total_epochs`` ->
    ``total_steps``, ``epochs`` -> ``steps``, ``step_size_up_epochs`` -> ``step_size_up``,
    ``cycle_epochs`` -> ``cycle_steps``), rounded to whole steps. Keys that are valid as they are stay.
    Lists of numbers (e.g. ``boundaries_epochs``) are converted element by element.
    """
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key in valid_keys or not (key == "epochs" or key.endswith("_epochs")):
            result[key] = value
            continue
        base = key[: -len("epochs")].rstrip("_")
        candidates = [f"{base}_steps", base] if base else ["steps"]
        target = next((candidate for candidate in candidates if candidate in valid_keys), None)
        if target is None:
            raise _unknown_key(where, key, list(valid_keys))
        if target in options:
            raise ConfigError(f"{where}: give {key} or {target}, not both")

        def convert(epochs: Any, name: str = key) -> int:
            if not _is_number(epochs) or epochs < 0:
                raise ConfigError(
                    f"{where}.{name} = {_toml_repr(epochs)}: expected a number of epochs >= 0"
                )
            return round(epochs * steps_per_epoch)

        result[target] = [convert(item) for item in value] if isinstance(value, list) else convert(value)
    return result


def _schedule_from_table(
    table: Mapping[str, Any], where: str, steps_per_epoch: int, total_steps: int
) -> dict[str, Any]:
    """Convert epoch keys (recursively for nested schedules) and fill a missing ``total_steps``."""
    from cadence.schedules import SCHEDULES, schedule_keys

    if "name" not in table:
        raise ConfigError(f"{where} needs a name; valid names: {', '.join(SCHEDULES)}")
    name = table["name"]
    if name not in SCHEDULES:
        raise ConfigError(
            f"{where}.name = {_toml_repr(name)}: unknown schedule{_hint(str(name), list(SCHEDULES))}; "
            f"valid names: {', '.join(SCHEDULES)}"
        )
    required, optional = schedule_keys(name)
    valid = ["name", *required, *optional]
    converted = epochs_to_steps(table, valid, steps_per_epoch, where)
    for key in converted:
        if key not in valid:
            raise _unknown_key(where, key, valid)
    for key, value in list(converted.items()):
        if isinstance(value, Mapping) and "name" in value:
            converted[key] = _schedule_from_table(value, f"{where}.{key}", steps_per_epoch, total_steps)
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            converted[key] = [
                _schedule_from_table(item, f"{where}.{key}[{index}]", steps_per_epoch, total_steps)
                for index, item in enumerate(value)
            ]
    if "total_steps" in required and "total_steps" not in converted:
        converted["total_steps"] = total_steps
    return converted


def schedule_configs(
    config: Mapping[str, Any], steps_per_epoch: int, total_steps: int
) -> dict[str, dict[str, Any] | float]:
    """The ``[schedule]`` section as ``{"lr": schedule config or number, "momentum": ..., ...}`` in steps."""
    schedule = _table(config, "schedule")
    if not schedule:
        return {}
    tables = {"lr": schedule} if "name" in schedule else schedule
    result: dict[str, dict[str, Any] | float] = {}
    for target, table in tables.items():
        where = "schedule" if "name" in schedule else f"schedule.{target}"
        if _is_number(table):
            result[target] = float(table)
        else:
            result[target] = _schedule_from_table(table, where, steps_per_epoch, total_steps)
    return result


# -- building ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Experiment:
    """Everything a config describes, built and ready for :class:`cadence.train.trainer.Trainer`."""

    config: dict[str, Any]
    data: Any
    train_loader: Any
    eval_loader: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[..., torch.Tensor]
    schedules: dict[str, Any]
    callbacks: list[Any]
    trainer_options: dict[str, Any]
    steps_per_epoch: int
    total_steps: int
    lr_scaling: Any = None


def _prefixed(where: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except ConfigError as error:
        message = str(error)
        raise ConfigError(
            message if message.startswith(f"[{where}]") else f"[{where}] {message}"
        ) from error


def _accepted(factory: Callable[..., Any]) -> set[str] | None:
    parameters = inspect.signature(factory).parameters.values()
    if any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return {parameter.name for parameter in parameters}


def _build_callback(name: str, options: Mapping[str, Any], steps_per_epoch: int) -> Any:
    options = {key: value for key, value in options.items() if key != "enabled"}
    module_name, class_name = CALLBACKS[name].split(":")
    try:
        callback_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"callback {name!r} is not available in this installation ({error})") from error
    parameters = inspect.signature(callback_class).parameters
    valid = [key for key, parameter in parameters.items() if parameter.kind is not parameter.VAR_KEYWORD]
    options = epochs_to_steps(options, valid, steps_per_epoch, f"callbacks.{name}")
    for key in options:
        if key not in valid:
            raise _unknown_key(f"callbacks.{name}", key, valid)
    try:
        return callback_class(**options)
    except TypeError as error:
        raise ConfigError(f"[callbacks.{name}] {error}") from error


def build_experiment(config: Mapping[str, Any]) -> Experiment:
    """Build data, loaders, model, optimizer, schedules and callbacks from a (validated) config."""
    from cadence import distributed, models, optimizers
    from cadence.data import TensorLoader, load

    config = copy.deepcopy(dict(config))
    validate_config(config)
    train = {**TRAIN_DEFAULTS, **_table(config, "train")}
    data_table = _table(config, "data")
    load_options = {key: value for key, value in data_table.items() if key not in DATA_LOADER_KEYS}
    data = _prefixed("data", lambda: load(data_table["name"], **load_options))

    distributed.init_from_env()
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    device = (
        distributed.default_device()
        if train.get("device", "auto") == "auto"
        else torch.device(train["device"])
    )
    data_device = device if data_table.get("on_device", True) else None
    train_loader = _prefixed(
        "data",
        lambda: TensorLoader(
            data.train.inputs,
            data.train.targets,
            train["batch_size"],
            shuffle=True,
            drop_last=data_table.get("drop_last", False),
            seed=train["seed"],
            device=data_device,
            augment=data_table.get("augment"),
            rank=rank,
            world_size=world_size,
        ),
    )
    eval_loader = TensorLoader(
        data.test.inputs, data.test.targets, train["eval_batch_size"], shuffle=False, device=data_device
    )
    accumulation_steps = train.get("accumulation_steps", 1)
    steps_per_epoch = math.ceil(len(train_loader) / accumulation_steps)
    total_steps = train.get("total_steps") or train["epochs"] * steps_per_epoch

    torch.manual_seed(train["seed"])  # the model's initial weights depend on the seed only
    model_table = _table(config, "model")
    model_options = {key: value for key, value in model_table.items() if key != "name"}
    accepted = _prefixed("model", lambda: models.model_options(model_table["name"]))
    for key, value in (("num_classes", data.num_classes), ("input_shape", data.input_shape)):
        if key not in model_options and (accepted is None or key in accepted):
            model_options[key] = value
    model = _prefixed("model", lambda: models.create(model_table["name"], **model_options))

    optimizer_table = _table(config, "optimizer")
    optimizer_name = optimizer_table.pop("name", "sgd")
    parameters: Any = model
    freezeout = _table(config, "callbacks").get("freezeout")
    if freezeout is not None and freezeout.get("enabled", True) is not False:
        # FreezeOut anneals and freezes each layer group on its own: one optimizer group per layer group,
        # built the same way as the callback builds its groups (layer_groups(model, n_groups)).
        from cadence.freezing import freezeout_param_groups

        parameters = freezeout_param_groups(
            model,
            n_groups=freezeout.get("n_groups"),
            weight_decay_exempt_norm_bias=bool(optimizer_table.pop("no_decay_norm_bias", False)),
        )
    optimizer = _prefixed(
        "optimizer", lambda: optimizers.create(optimizer_name, parameters, **optimizer_table)
    )

    tables = _prefixed("schedule", lambda: schedule_configs(config, steps_per_epoch, total_steps))
    schedules: dict[str, Any] = {}
    lr_scaling = None
    distributed_table = _table(config, "distributed")
    from cadence.schedules import from_config

    for target, table in tables.items():
        where = (
            "schedule" if target == "lr" and "name" in _table(config, "schedule") else f"schedule.{target}"
        )
        if isinstance(table, float):
            schedules[target] = table
        else:
            schedules[target] = _prefixed(where, lambda table=table: from_config(table))
    rule = distributed_table.get("lr_scaling", "none")
    warmup_given = any(distributed_table.get(key) for key in ("warmup_steps", "warmup_epochs"))
    if rule != "none" or warmup_given:  # a warmup alone is a plan too (factor 1)
        from cadence.distributed.scaling import lr_scaling_plan

        base = tables.get("lr", optimizer.param_groups[0]["lr"])
        lr_scaling = _prefixed(
            "distributed",
            lambda: lr_scaling_plan(
                base,
                train["batch_size"],
                world_size,
                accumulation_steps,
                rule=rule,
                base_batch_size=distributed_table.get("base_batch_size", 256),
                warmup_steps=distributed_table.get("warmup_steps"),
                warmup_epochs=distributed_table.get("warmup_epochs"),
                steps_per_epoch=steps_per_epoch,
                total_steps=total_steps,
            ),
        )
        schedules["lr"] = lr_scaling.apply(base)

    steps = steps_per_epoch
    callbacks = [
        _prefixed(
            f"callbacks.{name}", lambda name=name, options=options: _build_callback(name, options, steps)
        )
        for name, options in _table(config, "callbacks").items()
        if options.get("enabled", True) is not False
    ]

    trainer_options = {
        key: value
        for key, value in train.items()
        if key not in ("batch_size", "eval_batch_size", "loss", "device")
    }
    trainer_options["device"] = device
    trainer_options["num_classes"] = data.num_classes
    return Experiment(
        config=config,
        data=data,
        train_loader=train_loader,
        eval_loader=eval_loader,
        model=model,
        optimizer=optimizer,
        loss_fn=torch.nn.functional.cross_entropy,
        schedules=schedules,
        callbacks=callbacks,
        trainer_options=trainer_options,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        lr_scaling=lr_scaling,
    )


def trainer_for(experiment: Experiment, run_dir: str | Path | None = None) -> Any:
    """A :class:`cadence.train.trainer.Trainer` for a built experiment, writing to ``run_dir``."""
    from cadence.train.trainer import Trainer

    callbacks = list(experiment.callbacks)
    if experiment.lr_scaling is not None:  # records the plan in summary.json; the line is printed already
        from cadence.distributed import RecordLRScaling

        callbacks.append(RecordLRScaling(experiment.lr_scaling, print_summary=False))
    return Trainer(
        experiment.model,
        experiment.optimizer,
        experiment.loss_fn,
        experiment.train_loader,
        schedules=experiment.schedules or None,
        eval_data=experiment.eval_loader,
        callbacks=callbacks,
        run_dir=run_dir,
        config=experiment.config,
        **experiment.trainer_options,
    )


def build_trainer(config: Mapping[str, Any], run_dir: str | Path | None = None) -> Any:
    """Build a :class:`cadence.train.trainer.Trainer` for ``config`` writing to ``run_dir``."""
    return trainer_for(build_experiment(config), run_dir)


def run_config(
    config: Mapping[str, Any],
    run_dir: str | Path | None = None,
    resume: bool = False,
    *,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Build and fit the experiment of ``config``; ``resume=True`` continues from the latest checkpoint.

    ``log`` receives one-line notes for the user (the LR scaling applied, if any), on the main process only.
    Returns the final :class:`~cadence.train.state.TrainState`.
    """
    from cadence import distributed

    if resume and run_dir is None:
        raise ConfigError("resume needs the run directory of the run to continue")
    experiment = build_experiment(config)
    if log is not None and experiment.lr_scaling is not None and distributed.is_main_process():
        log(experiment.lr_scaling.summary())
    return trainer_for(experiment, run_dir).fit(resume="latest" if resume else None)
