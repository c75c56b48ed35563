"""Building an :class:`Experiment` (data, loaders, model, optimizer, schedules, callbacks) from a config."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from cadence.config.schema import (
    CALLBACKS,
    DATA_LOADER_KEYS,
    LR_SELECTION_SWEEP_KEYS,
    TRAIN_DEFAULTS,
    _table,
    _unknown_key,
)
from cadence.config.steps import epochs_to_steps, schedule_configs
from cadence.config.validation import validate_config
from cadence.errors import ConfigError

if TYPE_CHECKING:
    from cadence.distributed.scaling import LRScalingPlan


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
        raise ConfigError(message if message.startswith(f"[{where}]") else f"[{where}] {message}") from error


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


def lr_selection_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """``[lr_selection]`` as keyword arguments of :func:`cadence.lr_finder.select_lr`."""
    table = _table(config, "lr_selection")
    options = {key: value for key, value in table.items() if key not in LR_SELECTION_SWEEP_KEYS}
    sweep = {key: table[key] for key in LR_SELECTION_SWEEP_KEYS if key in table}
    if sweep:
        options["sweep_options"] = sweep
    return options


#: The rule applied when the global batch differs from the batch the config was tuned at (Goyal et al.).
DEFAULT_LR_SCALING = "linear"


def _lr_scaling_plan(
    table: Mapping[str, Any],
    base: Any,
    batch_size: int,
    world_size: int,
    accumulation_steps: int,
    steps_per_epoch: int,
    total_steps: int,
) -> LRScalingPlan | None:
    """The ``[distributed]`` LR scaling plan of a run, or ``None`` when there is nothing to scale or warm up.

    The config's LR was tuned at ``base_batch_size`` (default: the per-process ``batch_size`` ×
    ``accumulation_steps``, i.e. the batch of a one-process run of the config). When the global batch
    differs from it (more processes), the plan follows ``lr_scaling`` (default ``"linear"``, with a derived
    warmup unless the schedule warms up itself, e.g. one-cycle) and is printed; ``lr_scaling = "none"``
    keeps the LR, and the plan still says so.
    """
    from cadence.distributed.scaling import lr_scaling_plan

    rule = table.get("lr_scaling", DEFAULT_LR_SCALING)
    base_batch_size = table.get("base_batch_size", batch_size * accumulation_steps)
    changed = batch_size * world_size * accumulation_steps != base_batch_size
    warmup_given = any(table.get(key) for key in ("warmup_steps", "warmup_epochs"))
    explicit = "lr_scaling" in table and rule != "none"
    if not (changed or warmup_given or explicit):  # a warmup alone is a plan too (factor 1)
        return None
    return lr_scaling_plan(
        base,
        batch_size,
        world_size,
        accumulation_steps,
        rule=rule,
        base_batch_size=base_batch_size,
        warmup_steps=table.get("warmup_steps"),
        warmup_epochs=table.get("warmup_epochs"),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )


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

    from cadence.config.check import check_device

    check_device(train.get("device", "auto"))  # one line for a device that is not there, not a traceback
    timeout = _table(config, "distributed").get("timeout_s")
    distributed.init_from_env(**({"timeout_s": timeout} if timeout is not None else {}))
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
    # every process evaluates the whole test set (the results are then identical on all ranks)
    eval_loader = TensorLoader(
        data.test.inputs,
        data.test.targets,
        train["eval_batch_size"],
        shuffle=False,
        device=data_device,
        rank=0,
        world_size=1,
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
        "optimizer",
        lambda: optimizers.create(optimizer_name, parameters, device=device, **optimizer_table),
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
    base = tables.get("lr", optimizer.param_groups[0]["lr"])
    lr_scaling = _prefixed(
        "distributed",
        lambda: _lr_scaling_plan(
            distributed_table,
            base,
            train["batch_size"],
            world_size,
            accumulation_steps,
            steps_per_epoch,
            total_steps,
        ),
    )
    if lr_scaling is not None:
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
    if train.get("loggers"):  # the trackers, with their [loggers.<name>] options
        from cadence.tracking.loggers import create_logger

        tables = _table(config, "loggers")
        trainer_options["loggers"] = [
            _prefixed(f"loggers.{name}", lambda name=name: create_logger(name, **tables.get(name, {})))
            for name in train["loggers"]
        ]
    trainer_options["lr_selection"] = lr_selection_options(config)
    if "strategy" in _table(config, "distributed"):
        trainer_options["strategy"] = _table(config, "distributed")["strategy"]
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
