"""The checkpoint schema: which keys a Trainer checkpoint holds, of which types, per format version.

A checkpoint file holds a plain dict (so ``torch.load(weights_only=True)`` reads it); this module says
what that dict must contain. :data:`SCHEMAS` maps each format version this cadence reads to its
:class:`CheckpointSchema`; :func:`validate_payload` checks a loaded dict against the schema of its version
and raises :class:`CheckpointError` naming the file, the key (``trainer.total_steps``), the type expected
and the version. :class:`CheckpointRecord` is the typed form the Trainer writes and reads: built by
:func:`cadence.train.resume.checkpoint_payload`, turned into the dict written by
:meth:`CheckpointRecord.to_payload` and back by :meth:`CheckpointRecord.from_payload`.

Versions (docs/trainer.md, "Checkpoint schema", has the tables):

- **1**: ``model``, ``optimizer``, ``precision``, ``callbacks``, ``trainer``, ``rng``, ``epoch_rng``.
- **2**: as 1, plus ``checksum`` (a SHA-256 over the rest, checked by
  :func:`cadence.train.checkpoint.load_checkpoint`); a sharded checkpoint (``strategy="fsdp"``) holds
  ``sharded`` instead of ``model`` and ``optimizer``.

In both, ``trainer.loss_start`` and ``trainer.loss_average`` may be missing (they were added later; a
resume then uses NaN, so stall detection starts again). Keys the schema does not name are allowed and
kept by :meth:`CheckpointRecord.from_payload` in :attr:`CheckpointRecord.extra`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cadence.errors import ConfigError

__all__ = [
    "CHECKPOINT_FORMAT",
    "READABLE_FORMATS",
    "SCHEMAS",
    "CallbackRecord",
    "CheckpointError",
    "CheckpointRecord",
    "CheckpointSchema",
    "TrainerRecord",
    "validate_payload",
]


class CheckpointError(ConfigError):
    """A checkpoint is missing, corrupt, of an unknown format, or contains objects that would run code.

    Also raised when a checkpoint cannot be written (e.g. the disk is full), and when a loaded checkpoint
    lacks a key its format requires or holds a value of the wrong type there.
    """


class _Number:
    """Marker for "an int or a float, not a bool" in the schema tables."""


class _Integer:
    """Marker for "an int, not a bool" in the schema tables."""


_TYPE_NAMES = {
    _Number: "float",
    _Integer: "int",
    dict: "dict",
    list: "list",
    str: "str",
    torch.Tensor: "Tensor",
    type(None): "None",
}


def _matches(value: Any, kinds: tuple[type, ...]) -> bool:
    for kind in kinds:
        if kind is _Number and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind is _Integer and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind not in (_Number, _Integer) and isinstance(value, kind):
            return True
    return False


def _type_names(kinds: tuple[type, ...]) -> str:
    return " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in kinds)


@dataclass(frozen=True)
class CheckpointSchema:
    """The keys one format version requires, with their types.

    ``required`` / ``trainer_required``: top-level keys and keys of the ``"trainer"`` section, each with
    the types it may have. ``weights``: alternative groups of keys holding the model and optimizer, one
    of which must be present in full (``("model", "optimizer")`` or ``("sharded",)``). ``trainer_optional``:
    keys a file of this version may lack, with their types and the value a resume uses instead.
    ``nested``: required keys inside a top-level dict (``rng.torch``), by dotted path.
    """

    version: int
    required: Mapping[str, tuple[type, ...]]
    weights: tuple[Mapping[str, tuple[type, ...]], ...]
    trainer_required: Mapping[str, tuple[type, ...]]
    trainer_optional: Mapping[str, tuple[tuple[type, ...], Any]] = field(default_factory=dict)
    nested: Mapping[str, tuple[type, ...]] = field(default_factory=dict)
    callback_entry: Mapping[str, tuple[type, ...]] = field(default_factory=dict)


_TRAINER_KEYS: dict[str, tuple[type, ...]] = {
    "step": (_Integer,),
    "epoch": (_Integer,),
    "batch_index": (_Integer,),
    "skipped_steps": (_Integer,),
    "wall_time": (_Number,),
    "last_loss": (_Number,),
    "metrics": (dict,),
    "best": (dict,),
    "total_steps": (_Integer,),
    "world_size": (_Integer,),
    "metrics_lines": (_Integer,),
    "schedules": (dict,),
}
_TRAINER_OPTIONAL: dict[str, tuple[tuple[type, ...], Any]] = {
    "loss_start": ((_Number,), float("nan")),
    "loss_average": ((_Number,), float("nan")),
}
_TOP_LEVEL: dict[str, tuple[type, ...]] = {
    "precision": (dict,),
    "callbacks": (list,),
    "trainer": (dict,),
    "rng": (dict,),
    "epoch_rng": (torch.Tensor, type(None)),
}
_RNG_KEYS: dict[str, tuple[type, ...]] = {
    "rng.torch": (torch.Tensor,),
    "rng.numpy": (dict,),
    "rng.python": (dict,),
}
_FULL_WEIGHTS: dict[str, tuple[type, ...]] = {"model": (dict,), "optimizer": (dict,)}
_SHARDED_WEIGHTS: dict[str, tuple[type, ...]] = {"sharded": (dict,)}
_CALLBACK_ENTRY: dict[str, tuple[type, ...]] = {"class": (str,), "state": (dict,)}

#: Every format version this cadence reads, oldest first, with what it requires.
SCHEMAS: dict[int, CheckpointSchema] = {
    1: CheckpointSchema(
        version=1,
        required=_TOP_LEVEL,
        weights=(_FULL_WEIGHTS,),
        trainer_required=_TRAINER_KEYS,
        trainer_optional=_TRAINER_OPTIONAL,
        nested=_RNG_KEYS,
        callback_entry=_CALLBACK_ENTRY,
    ),
    2: CheckpointSchema(
        version=2,
        required={**_TOP_LEVEL, "checksum": (dict,)},
        weights=(_FULL_WEIGHTS, _SHARDED_WEIGHTS),
        trainer_required=_TRAINER_KEYS,
        trainer_optional=_TRAINER_OPTIONAL,
        nested={**_RNG_KEYS, "sharded.directory": (str,), "sharded.files": (dict,)},
        callback_entry=_CALLBACK_ENTRY,
    ),
}
#: The checkpoint layout this version writes.
CHECKPOINT_FORMAT = max(SCHEMAS)
#: The versions :func:`cadence.train.checkpoint.load_checkpoint` reads.
READABLE_FORMATS = tuple(SCHEMAS)


def payload_format(payload: Mapping[str, Any]) -> Any:
    """The format version a loaded checkpoint says it has (files without one are format 1)."""
    return payload.get("format", 1)


def validate_payload(payload: Mapping[str, Any], path: str | Path | None) -> CheckpointSchema:
    """Check ``payload`` against the schema of its format version; returns that schema.

    Raises :class:`CheckpointError` naming the file, the key missing or of the wrong type (with its path,
    e.g. ``trainer.total_steps``), the type expected and the format version; also for an unknown version.
    """
    where = f"checkpoint {str(path)!r}" if path is not None else "the checkpoint"
    version = payload_format(payload)
    schema = SCHEMAS.get(version) if _matches(version, (_Integer,)) else None
    if schema is None:
        raise CheckpointError(
            f"{where} has format {version!r}; this cadence reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))} (was it written by a newer cadence?)"
        )

    def check(container: Mapping[str, Any], key: str, kinds: tuple[type, ...], name: str) -> None:
        if key not in container:
            raise CheckpointError(
                f"{where} (format {version}) lacks the key {name!r} (expected {_type_names(kinds)})"
            )
        value = container[key]
        if not _matches(value, kinds):
            raise CheckpointError(
                f"{where} (format {version}) has {name!r} of type {type(value).__name__}, expected "
                f"{_type_names(kinds)}"
            )

    for key, kinds in schema.required.items():
        check(payload, key, kinds, key)
    groups = [group for group in schema.weights if any(key in payload for key in group)]
    if not groups:
        options = " or ".join(" and ".join(repr(key) for key in group) for group in schema.weights)
        raise CheckpointError(f"{where} (format {version}) lacks its weights: expected {options}")
    if len(groups) > 1:
        raise CheckpointError(
            f"{where} (format {version}) holds both full and sharded weights "
            f"({', '.join(repr(key) for group in groups for key in group if key in payload)})"
        )
    for key, kinds in groups[0].items():
        check(payload, key, kinds, key)
    for name, kinds in schema.nested.items():
        section, key = name.split(".", 1)
        if section in payload:
            check(payload[section], key, kinds, name)
    trainer = payload["trainer"]
    for key, kinds in schema.trainer_required.items():
        check(trainer, key, kinds, f"trainer.{key}")
    for key, (kinds, _default) in schema.trainer_optional.items():
        if key in trainer:
            check(trainer, key, kinds, f"trainer.{key}")
    for index, entry in enumerate(payload["callbacks"]):
        if not isinstance(entry, dict):
            raise CheckpointError(
                f"{where} (format {version}) has 'callbacks[{index}]' of type {type(entry).__name__}, "
                "expected dict"
            )
        for key, kinds in schema.callback_entry.items():
            check(entry, key, kinds, f"callbacks[{index}].{key}")
    return schema


@dataclass(frozen=True)
class TrainerRecord:
    """The ``"trainer"`` section: the loop's counters and what the run directory needs on resume."""

    step: int
    epoch: int
    batch_index: int
    skipped_steps: int
    wall_time: float
    last_loss: float
    metrics: dict[str, float]
    best: dict[str, float]
    total_steps: int
    world_size: int
    #: Lines of ``metrics.jsonl`` written when the checkpoint was taken (a resume drops the rest).
    metrics_lines: int
    #: Config forms of the schedules the LR finder resolved (``{}`` when it did not run).
    schedules: dict[str, Any]
    loss_start: float = math.nan
    loss_average: float = math.nan

    def to_payload(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "skipped_steps": self.skipped_steps,
            "wall_time": self.wall_time,
            "last_loss": self.last_loss,
            "loss_start": self.loss_start,
            "loss_average": self.loss_average,
            "metrics": dict(self.metrics),
            "best": dict(self.best),
            "total_steps": self.total_steps,
            "world_size": self.world_size,
            "metrics_lines": self.metrics_lines,
            "schedules": self.schedules,
        }


@dataclass(frozen=True)
class CallbackRecord:
    """One callback's state, under the name of its class (a resume checks the names match)."""

    name: str
    state: dict[str, Any]


@dataclass(frozen=True, eq=False)
class CheckpointRecord:
    """A Trainer checkpoint, typed: what :func:`~cadence.train.resume.checkpoint_payload` builds and a
    resume reads.

    Either ``model`` and ``optimizer`` (state dicts) are set, or ``sharded`` (``strategy="fsdp"``: the
    ``directory`` of the shards next to the file and the SHA-256 of each of its ``files``), never both.
    ``rng`` is :func:`~cadence.train.checkpoint.capture_rng_state`'s dict; ``epoch_rng`` is torch's
    generator state at the start of the epoch (a mid-epoch resume replays the data order from it).
    ``extra`` holds top-level keys the schema does not name, so a round trip keeps them.
    """

    trainer: TrainerRecord
    precision: dict[str, Any]
    callbacks: tuple[CallbackRecord, ...]
    rng: dict[str, Any]
    epoch_rng: torch.Tensor | None
    model: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    sharded: dict[str, Any] | None = None
    format: int = CHECKPOINT_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.sharded is None) == (self.model is None or self.optimizer is None):
            raise ValueError("a CheckpointRecord holds either model and optimizer, or sharded")

    def to_payload(self) -> dict[str, Any]:
        """The plain dict written to the file (tensors, dicts, lists, str, numbers, None only).

        Keys in the order the Trainer has always written them, so the file's checksum covers the same
        sequence of values; ``"checksum"`` itself is added by
        :func:`~cadence.train.checkpoint.save_checkpoint`.
        """
        weights: dict[str, Any] = (
            {"sharded": self.sharded}
            if self.sharded is not None
            else {"model": self.model, "optimizer": self.optimizer}
        )
        return {
            "format": self.format,
            **weights,
            "precision": self.precision,
            "callbacks": [{"class": entry.name, "state": entry.state} for entry in self.callbacks],
            "trainer": self.trainer.to_payload(),
            "rng": self.rng,
            "epoch_rng": self.epoch_rng,
            **{key: value for key, value in self.extra.items() if key != "checksum"},
        }

    @classmethod
    def from_payload(cls, saved: Mapping[str, Any], path: str | Path | None = None) -> CheckpointRecord:
        """The record of a loaded checkpoint dict, validated against its format's schema (``path`` names
        the file in the errors); keys an older format lacks get their defaults."""
        schema = validate_payload(saved, path)
        trainer = saved["trainer"]
        values = {key: trainer[key] for key in schema.trainer_required}
        for key, (_kinds, default) in schema.trainer_optional.items():
            values[key] = float(trainer.get(key, default))
        names = {item.name for item in dataclasses.fields(cls)} | {"checksum"}
        return cls(
            trainer=TrainerRecord(**values),
            precision=saved["precision"],
            callbacks=tuple(CallbackRecord(entry["class"], entry["state"]) for entry in saved["callbacks"]),
            rng=saved["rng"],
            epoch_rng=saved["epoch_rng"],
            model=saved.get("model"),
            optimizer=saved.get("optimizer"),
            sharded=saved.get("sharded"),
            format=schema.version,
            extra={key: value for key, value in saved.items() if key not in names},
        )
