"""The fingerprint of a config run: the resolved config (with defaults), the overrides, the data files read.

Defaults filled in: ``[train]`` (:data:`~cadence.config.schema.TRAIN_DEFAULTS` and the Trainer's own
defaults), ``[data]`` (the dataset loader's defaults and the common options), ``[model]`` (the factory's
defaults) and ``[optimizer]`` (``name = "sgd"`` and its default ``lr``). So writing a default out in the
config, or leaving it out, gives the same fingerprint. Settings that cannot change the result (progress
display, CSV/TensorBoard logging, the trackers (``train.loggers`` and ``[loggers]``), checkpoint frequency
and count, the run's display name, download and cache switches) are left out, so changing them never blocks
a resume.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.config.schema import TRAIN_DEFAULTS, TRAIN_KEYS, _table

__all__ = ["BOOKKEEPING_KEYS", "config_fingerprint", "expected_fingerprint", "resolved_config"]

#: Dotted keys that do not change what a run computes; not part of the fingerprint.
BOOKKEEPING_KEYS = frozenset(
    {
        "train.progress",
        "train.csv",
        "train.tensorboard",
        "train.loggers",
        "train.checkpoint_every_steps",
        "train.checkpoint_every_epochs",
        "train.keep_checkpoints",
        "train.name",
        "data.download",
        "data.cache",
    }
)
_COMMON_DATA_DEFAULTS = {"subset_seed": 0, "normalize": False, "drop_last": False, "on_device": True}


def _defaults(factory: Callable[..., Any], skip: int = 0) -> dict[str, Any]:
    parameters = list(inspect.signature(factory).parameters.values())[skip:]
    return {
        parameter.name: parameter.default
        for parameter in parameters
        if parameter.default is not inspect.Parameter.empty
        and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    }


def resolved_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with the defaults of ``[train]``, ``[data]``, ``[model]`` and ``[optimizer]``."""
    from cadence.train.trainer import Trainer

    resolved = copy.deepcopy(dict(config))
    trainer_defaults = {key: value for key, value in _defaults(Trainer.__init__).items() if key in TRAIN_KEYS}
    train = {**trainer_defaults, **TRAIN_DEFAULTS, "loss": "cross_entropy", "device": "auto"}
    train.update(_table(config, "train"))
    resolved["train"] = train
    data = _table(config, "data")
    with contextlib.suppress(Exception):  # an unknown dataset is reported when the data is loaded
        from cadence.data.registry import _resolve

        data = {**_defaults(_resolve(str(data["name"]))), **_COMMON_DATA_DEFAULTS, **data}
    resolved["data"] = data
    model = _table(config, "model")
    with contextlib.suppress(Exception):
        from cadence.models import _lookup

        factory, positional = _lookup(str(model["name"]))
        model = {**_defaults(factory, len(positional)), **model}
    resolved["model"] = model
    optimizer = {"name": "sgd", **_table(config, "optimizer")}
    with contextlib.suppress(Exception):
        from cadence.optimizers import OPTIMIZERS

        optimizer_class, default_lr = OPTIMIZERS[str(optimizer["name"])]
        optimizer = {**_defaults(optimizer_class.__init__, 2), "lr": default_lr, **optimizer}
    resolved["optimizer"] = optimizer
    return resolved


def config_fingerprint(
    config: Mapping[str, Any],
    overrides: Sequence[str] = (),
    data_files: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The fingerprint (see :mod:`cadence.tracking.fingerprint`) of a run of ``config``."""
    from cadence.tracking.fingerprint import flatten, make_fingerprint

    values = {
        key: value
        for key, value in flatten(resolved_config(config)).items()
        if key not in BOOKKEEPING_KEYS and not key.startswith("loggers.")
    }
    return make_fingerprint(values, overrides=overrides, data_files=data_files)


def expected_fingerprint(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any] | None:
    """The fingerprint (without data files) a run of the config file ``path`` would record, or ``None``
    when the config cannot be read (the run itself then reports why)."""
    from cadence.config.parsing import load_config
    from cadence.errors import ConfigError

    try:
        return config_fingerprint(load_config(path, overrides), overrides)
    except (ConfigError, OSError):
        return None
