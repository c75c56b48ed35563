"""Containers for in-memory datasets: :class:`TensorPair` and :class:`DatasetSplits`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["DatasetSplits", "TensorPair"]


@dataclass
class TensorPair:
    """Inputs and integer class targets of one split, as tensors with the same first dimension."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.targets.shape[0]:
            raise ValueError(
                f"inputs and targets differ in length: {self.inputs.shape[0]} != {self.targets.shape[0]}"
            )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __iter__(self):
        # Lets ``inputs, targets = pair`` unpack.
        return iter((self.inputs, self.targets))

    def take(self, indices: torch.Tensor) -> TensorPair:
        """Return the rows at ``indices`` (a new pair; the tensors are copies)."""
        return TensorPair(self.inputs[indices], self.targets[indices])


@dataclass
class DatasetSplits:
    """A dataset loaded in memory: ``train`` and ``test`` splits plus metadata.

    ``input_shape`` is the shape of one example (e.g. ``(1, 28, 28)`` or ``(40,)``); ``meta`` holds
    free-form facts such as ``classes`` (names), ``source`` (where the files came from) or ``mean``/``std``
    when normalized.
    """

    train: TensorPair
    test: TensorPair
    num_classes: int
    input_shape: tuple[int, ...]
    name: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"DatasetSplits(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
            f"num_classes={self.num_classes}, input_shape={self.input_shape})"
        )
