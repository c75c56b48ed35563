"""Checks of the Trainer's arguments, run before anything is built so a bad value fails at construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cadence.errors import ConfigError, require
from cadence.train.callback import Callback
from cadence.train.compiling import CompileOption, check_compile, compile_arguments

if TYPE_CHECKING:
    from cadence.tracking.loggers import Logger

__all__ = [
    "DIVERGENCE_MODES",
    "PROGRESS_MODES",
    "SCHEDULE_NAMES",
    "TOML_OPTIONS",
    "TrainerOptions",
    "check_options",
    "check_positive",
]

SCHEDULE_NAMES = ("lr", "momentum", "weight_decay")
DIVERGENCE_MODES = ("stop", "raise")
PROGRESS_MODES = ("auto", True, False, None, "bar", "lines", "off")
#: The progress modes a config can write (TOML has no null).
TOML_PROGRESS_MODES = ("auto", "bar", "lines", "off", True, False)


# -- value checks for config values: None when valid, else a description of the valid values -----------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "a whole number >= 1"


def non_negative_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "a whole number >= 0"


def positive_number(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "a number > 0"


def fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty string"


def choice(*choices: Any) -> Callable[[Any], str | None]:
    """A check accepting exactly ``choices`` (``True`` is not ``1``)."""

    def check(value: Any) -> str | None:
        if any(value == option and type(value) is type(option) for option in choices):
            return None
        return "one of " + ", ".join(_toml_repr(option) for option in choices)

    return check


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def logger_names(value: Any) -> str | None:
    """A list of tracker names, each at most once."""
    from cadence.tracking.loggers import LOGGER_NAMES

    expected = "a list of logger names from " + ", ".join(_toml_repr(name) for name in LOGGER_NAMES)
    if not isinstance(value, (list, tuple)) or any(name not in LOGGER_NAMES for name in value):
        return expected
    return None if len(set(value)) == len(value) else expected + ", each at most once"


def _precision_modes() -> tuple[str, ...]:
    from cadence.precision import PRECISION_MODES

    return PRECISION_MODES


#: The Trainer's keyword arguments that a config's ``[train]`` table may set, with the check of a config
#: value. This is the one list: the config schema takes its ``[train]`` keys from here and passes them to
#: ``Trainer(**options)``, so exposing a Trainer option to TOML is the keyword argument plus a row here.
TOML_OPTIONS: dict[str, Callable[[Any], str | None]] = {
    "epochs": positive_int,
    "total_steps": positive_int,
    "seed": non_negative_int,
    "label_smoothing": fraction,
    "precision": choice(*_precision_modes()),
    "grad_clip": positive_number,
    "accumulation_steps": positive_int,
    "checkpoint_every_steps": positive_int,
    "checkpoint_every_epochs": positive_int,
    "keep_checkpoints": positive_int,
    "eval_every_epochs": positive_int,
    "progress": choice(*TOML_PROGRESS_MODES),
    "on_divergence": choice(*DIVERGENCE_MODES),
    "log_every_n_steps": positive_int,
    "channels_last": boolean,
    "compile": check_compile,
    "tf32": boolean,
    "cudnn_benchmark": boolean,
    "csv": boolean,
    "tensorboard": boolean,
    "loggers": logger_names,
    "name": string,
}


@dataclass(frozen=True)
class TrainerOptions:
    """The Trainer's TOML-settable options (:data:`TOML_OPTIONS`) as one typed value, with the Trainer's
    defaults: ``Trainer(model, optimizer, loss_fn, data, options=TrainerOptions(epochs=3, seed=1))``.

    The fields are the rows of :data:`TOML_OPTIONS`, in order, and their defaults are the Trainer's
    (``tests/train/test_trainer_options.py`` checks both). :meth:`from_mapping` reads a ``[train]``-style
    table with the table's checks; ``dataclasses.replace(options, seed=2)`` changes one.
    """

    epochs: int | None = None
    total_steps: int | None = None
    seed: int = 0
    label_smoothing: float = 0.0
    precision: str = "fp32"
    grad_clip: float | None = None
    accumulation_steps: int = 1
    checkpoint_every_steps: int | None = None
    checkpoint_every_epochs: int | None = 1
    keep_checkpoints: int = 2
    eval_every_epochs: int | None = 1
    progress: str | bool | None = "auto"
    on_divergence: str = "stop"
    log_every_n_steps: int = 10
    channels_last: bool = False
    compile: CompileOption = False
    tf32: bool = False
    cudnn_benchmark: bool = False
    csv: bool = False
    tensorboard: bool = False
    loggers: Sequence[Logger | str] | None = None
    name: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainerOptions:
        """Options from a table of TOML-style values; an unknown key or a bad value raises
        :class:`~cadence.errors.ConfigError` naming the key and what it accepts."""
        for key, value in values.items():
            if key not in TOML_OPTIONS:
                raise ConfigError(
                    f"TrainerOptions: unknown option {key!r}; valid options: {', '.join(TOML_OPTIONS)}"
                )
            problem = TOML_OPTIONS[key](value)
            if problem is not None:
                raise ConfigError(f"TrainerOptions: {key} must be {problem}, got {key}={value!r}")
        return cls(**values)

    def as_kwargs(self) -> dict[str, Any]:
        """The options as the Trainer's keyword arguments."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    def merged_with(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``arguments`` (the Trainer's keyword arguments) with these options filled in.

        An option left at its default takes the keyword argument's value and a keyword argument left at its
        default takes the option's; an option given both ways with different values raises
        :class:`~cadence.errors.ConfigError`.
        """
        merged = dict(arguments)
        for item in dataclasses.fields(self):
            option, argument = getattr(self, item.name), arguments.get(item.name, item.default)
            if _same(option, item.default) or _same(option, argument):
                continue
            if not _same(argument, item.default):
                raise ConfigError(
                    f"Trainer: {item.name} is given twice, {item.name}={argument!r} and "
                    f"options.{item.name}={option!r}; give it once"
                )
            merged[item.name] = option
        return merged


def _same(first: Any, second: Any) -> bool:
    return isinstance(first, bool) == isinstance(second, bool) and bool(first == second)


def check_options(
    *,
    loss_fn: Callable[[Any, Any], Any],
    epochs: int | None,
    total_steps: int | None,
    accumulation_steps: int,
    checkpoint_every_steps: int | None,
    checkpoint_every_epochs: int | None,
    eval_every_epochs: int | None,
    keep_checkpoints: int,
    schedules: Mapping[str, Any] | None,
    metrics: Sequence[str | Callable[[Any, Any], Any]],
    callbacks: Iterable[Callback],
    on_divergence: str,
    progress: str | bool | None,
    label_smoothing: float,
    grad_clip: float | None,
    tensorboard: bool,
    compile: Any = False,
    tf32: Any = False,
    cudnn_benchmark: Any = False,
) -> None:
    """Raise :class:`~cadence.errors.ConfigError` for the first invalid argument, in signature order."""
    if epochs is None and total_steps is None:
        raise ConfigError("Trainer: give epochs or total_steps (the number of optimizer updates)")
    check_positive("epochs", epochs)
    check_positive("total_steps", total_steps)
    check_positive("accumulation_steps", accumulation_steps)
    check_positive("checkpoint_every_steps", checkpoint_every_steps)
    check_positive("checkpoint_every_epochs", checkpoint_every_epochs)
    check_positive("eval_every_epochs", eval_every_epochs)
    check_positive("keep_checkpoints", keep_checkpoints)
    unknown = sorted(set(schedules or {}) - set(SCHEDULE_NAMES))
    if unknown:
        raise ConfigError(f"schedules: unknown hyperparameter(s) {unknown}; allowed: {list(SCHEDULE_NAMES)}")
    if on_divergence not in DIVERGENCE_MODES:
        raise ConfigError(f"on_divergence must be one of {list(DIVERGENCE_MODES)}, got {on_divergence!r}")
    if progress not in PROGRESS_MODES:
        raise ConfigError(f"progress must be 'auto', True or False, got {progress!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing=}")
    if grad_clip is not None and not grad_clip > 0:
        raise ConfigError(f"grad_clip must be a positive number or None, got {grad_clip=}")
    for metric in metrics:
        if not callable(metric) and metric != "accuracy":
            raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: 'accuracy' or a callable")
    compile_arguments(compile)
    for name, value in (("tf32", tf32), ("cudnn_benchmark", cudnn_benchmark)):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False, got {name}={value!r}")
    if tensorboard:
        require("tensorboard", "tensorboard", "TensorBoard logging (tensorboard=True)")
    soft_sources = [f"label_smoothing={label_smoothing}"] if label_smoothing else []
    soft_sources += [type(c).__name__ for c in callbacks if getattr(c, "produces_soft_targets", False)]
    if soft_sources:
        # Imported here: only runs with soft targets need the regularization module.
        from cadence.regularization import check_soft_target_loss

        check_soft_target_loss(loss_fn, purpose=" and ".join(soft_sources))


def check_positive(name: str, value: int | None) -> None:
    """A positive ``int`` (not a ``bool``) or ``None``."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{name} must be a positive integer or None, got {name}={value!r}")
