"""The config schema: sections, known keys, valid values and the helpers that report problems with them."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cadence.errors import ConfigError
from cadence.train.options import TOML_OPTIONS

SECTIONS = (
    "data",
    "model",
    "optimizer",
    "schedule",
    "train",
    "callbacks",
    "distributed",
    "lr_selection",
    "loggers",
)

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
DISTRIBUTED_KEYS = (
    "lr_scaling",
    "base_batch_size",
    "warmup_steps",
    "warmup_epochs",
    "timeout_s",
    "strategy",
)
LR_SCALING_RULES = ("none", "linear", "sqrt")
#: ``[distributed] strategy``: the same values as :data:`cadence.distributed.STRATEGIES`.
STRATEGIES = ("ddp", "fsdp")
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


#: ``[train]`` key -> check returning None when valid, else a description of the valid values: the Trainer's
#: own options (:data:`cadence.train.options.TOML_OPTIONS`, the one list of them) and the keys the config
#: layer consumes itself (loaders, device, loss).
TRAIN_KEYS: dict[str, Callable[[Any], str | None]] = {
    **TOML_OPTIONS,
    "batch_size": _positive_int,
    "eval_batch_size": _positive_int,
    "device": _string,
    "loss": _choice(*LOSSES),
}
TRAIN_DEFAULTS: dict[str, Any] = {"batch_size": 128, "eval_batch_size": 1024, "seed": 0}


def _open_fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 < value < 1 else "a number in (0, 1)"


def _budget(value: Any) -> str | None:
    return (
        None
        if _is_number(value) and 0 < value <= 10
        else "a number in (0, 10] (training runs' worth of steps)"
    )


def _candidates(value: Any) -> str | None:
    return None if _is_int(value) and 2 <= value <= 12 else "a whole number in [2, 12]"


#: ``[lr_selection]`` key -> check: how ``max_lr = "auto"`` is chosen (``cadence.lr_finder.select_lr``).
LR_SELECTION_KEYS: dict[str, Callable[[Any], str | None]] = {
    "method": _choice("race", "sweep"),
    "budget": _budget,
    "candidates": _candidates,
    "val_fraction": _open_fraction,
    "refine_vertex": _boolean,
    "rule": _choice("valley", "steepest", "minimum"),
    "start_lr": _positive_number,
    "end_lr": _positive_number,
    "num_steps": _positive_int,
}
#: ``[lr_selection]`` keys that configure the range test rather than the race.
LR_SELECTION_SWEEP_KEYS = ("start_lr", "end_lr", "num_steps")


def _string_table(value: Any) -> str | None:
    if isinstance(value, Mapping) and all(isinstance(item, str) for item in value.values()):
        return None
    return 'a table of strings like { team = "vision" }'


def _string_list(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) and item for item in value):
        return None
    return "a list of strings"


#: ``[loggers.<name>]`` tables: logger name -> key -> check; the keys are the logger's keyword arguments
#: (:mod:`cadence.tracking.loggers`), a logger's table applies when ``train.loggers`` lists it.
LOGGER_KEYS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "tensorboard": {"log_dir": _string},
    "mlflow": {
        "tracking_uri": _string,
        "experiment": _string,
        "run_name": _string,
        "tags": _string_table,
        "log_artifacts": _boolean,
        "flush_every": _positive_int,
    },
    "wandb": {
        "project": _string,
        "entity": _string,
        "mode": _choice("online", "offline", "disabled"),
        "dir": _string,
        "group": _string,
        "tags": _string_list,
        "run_name": _string,
        "log_artifacts": _boolean,
    },
}


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
