"""TensorLoader: a fast in-memory loader whose order is a pure function of (seed, epoch).

Why not ``torch.utils.data.DataLoader``? For datasets that fit in memory (MNIST-1D, Fashion-MNIST,
CIFAR-10) indexing one tensor per batch is much cheaper than collating single examples, the data can stay on
the GPU, and resuming in the middle of an epoch is exact: ``batches(epoch, start)`` produces the same batches
as the tail of ``batches(epoch, 0)``, because the shuffle and the augmentation draw from generators seeded
by ``(seed, epoch)`` and ``(seed, epoch, batch index)`` rather than from a stream consumed so far.

Example::

    loader = TensorLoader(inputs, targets, batch_size=128, seed=0)
    for epoch in range(10):
        for x, y in loader.batches(epoch):
            ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from cadence.data.augment import Augment
from cadence.errors import ConfigError

__all__ = ["TensorLoader", "derive_seed"]

AugmentFunction = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

_SHUFFLE_STREAM = 0
_AUGMENT_STREAM = 1


def _group_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def derive_seed(*values: int) -> int:
    """Mix integers into one 63-bit seed (numpy's SeedSequence: well-spread, platform independent)."""
    state = np.random.SeedSequence([int(value) for value in values]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class TensorLoader:
    """Iterate over ``(inputs, targets)`` in shuffled batches of ``batch_size``.

    Args:
        inputs, targets: tensors with the same first dimension (a ``TensorPair`` unpacks into them).
        batch_size: examples per batch *per process*.
        shuffle: reshuffle each epoch with a permutation drawn from ``(seed, epoch)``.
        drop_last: drop the last incomplete batch.
        seed: seed of the shuffle and augmentation.
        device: move the whole dataset there once (e.g. ``"cuda"``) so batches never cross the bus.
        augment: ``None``, an :class:`~cadence.data.augment.Augment`, a mapping of its options
            (``{"crop_padding": 4, "flip": True}``), or any ``f(inputs, generator) -> inputs``.
        rank, world_size: data-parallel shard. Every rank computes the same global permutation and takes
            every ``world_size``-th example from position ``rank``; the ``n % world_size`` examples at the end
            of the permutation are left out of that epoch (different ones each epoch), so shards are disjoint
            and every rank has the same number of batches (unequal counts would hang collective operations).
            Left out (``None``), they follow the initialised ``torch.distributed`` process group, read each
            time they are used: under DDP the loader is sharded by default, in a single process it is not.
            Pass ``rank=0, world_size=1`` for a loader that serves the whole data on every rank.

    ``len(loader)`` is the number of batches per epoch on this rank. ``iter(loader)`` walks epochs
    0, 1, 2, ... on successive calls; a training loop that needs to resume uses :meth:`batches` instead.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
        augment: Augment | Mapping[str, Any] | AugmentFunction | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets differ in length: {inputs.shape[0]} != {targets.shape[0]}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._rank = rank
        self._world_size = world_size
        rank, world_size = self.rank, self.world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {rank=} {world_size=}")
        if device is not None:
            device = torch.device(device)
            inputs, targets = inputs.to(device), targets.to(device)
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        if isinstance(augment, Mapping):
            augment = Augment(**augment)
        self.augment: AugmentFunction | None = augment
        self._next_epoch = 0
        if self.examples_per_rank == 0 or len(self) == 0:
            raise ConfigError(
                f"no batches: {len(targets)} examples, batch_size={batch_size}, world_size={world_size}, "
                f"drop_last={drop_last}"
            )

    @property
    def rank(self) -> int:
        """This loader's shard: the ``rank`` given, else the process group's rank (0 without one)."""
        if self._rank is not None:
            return self._rank
        return dist.get_rank() if _group_initialized() else 0

    @property
    def world_size(self) -> int:
        """Number of shards: the ``world_size`` given, else the process group's size (1 without one)."""
        if self._world_size is not None:
            return self._world_size
        return dist.get_world_size() if _group_initialized() else 1

    @property
    def device(self) -> torch.device:
        """Where the data (and therefore every batch) lives."""
        return self.inputs.device

    @property
    def examples_per_rank(self) -> int:
        """Examples this rank sees per epoch."""
        count = len(self.targets)
        return count if self.world_size == 1 else count // self.world_size

    def __len__(self) -> int:
        full, remainder = divmod(self.examples_per_rank, self.batch_size)
        return full + (1 if remainder and not self.drop_last else 0)

    def indices(self, epoch: int) -> torch.Tensor:
        """Indices of this rank's examples for ``epoch``, in the order they are served."""
        count = len(self.targets)
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, _SHUFFLE_STREAM))
            order = torch.randperm(count, generator=generator)
        else:
            order = torch.arange(count)
        if self.world_size > 1:
            usable = self.examples_per_rank * self.world_size
            order = order[self.rank : usable : self.world_size]
        return order.to(self.device)

    def _generator(self, epoch: int, index: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derive_seed(self.seed, epoch, index, self.rank, _AUGMENT_STREAM))
        return generator

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of ``epoch`` from batch number ``start`` on (0-based)."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start=}")
        order = self.indices(epoch)
        for index in range(start, len(self)):
            chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
            inputs, targets = self.inputs[chosen], self.targets[chosen]
            if self.augment is not None:
                inputs = self.augment(inputs, self._generator(epoch, index))
            yield inputs, targets

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` serve ``epoch`` (as DistributedSampler.set_epoch)."""
        self._next_epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch
        self._next_epoch += 1
        return self.batches(epoch)

    def __repr__(self) -> str:
        return (
            f"TensorLoader(examples={len(self.targets)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed}, device={str(self.device)!r}, "
            f"augment={self.augment!r}, rank={self.rank}, world_size={self.world_size})"
        )
