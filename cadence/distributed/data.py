"""Give a torch ``DataLoader`` a ``DistributedSampler``, so each rank reads a disjoint shard."""

from __future__ import annotations

from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, IterableDataset, RandomSampler

from cadence.distributed.environment import get_rank, get_world_size, is_distributed
from cadence.errors import ConfigError

__all__ = ["shard_dataloader"]


def shard_dataloader(
    loader: DataLoader, *, shuffle: bool | None = None, seed: int = 0, drop_last: bool = False
) -> DataLoader:
    """Return ``loader`` rebuilt with a :class:`~torch.utils.data.DistributedSampler` when world size > 1.

    Rank ``r`` of ``W`` then reads every ``W``-th index of one permutation shared by all ranks (drawn from
    ``(seed, epoch)``; the Trainer calls ``sampler.set_epoch`` so each epoch is reshuffled). ``shuffle``
    defaults to whether ``loader`` shuffles (a ``RandomSampler``). With ``drop_last=False`` the sampler pads
    the last indices by repeating a few examples so every rank has the same number of batches (unequal
    counts would hang the gradient all-reduce); ``drop_last=True`` drops them instead. Batch size, workers,
    collate function and the other loader options are kept; ``batch_size`` stays *per process*.

    Unchanged: in a single process, when the sampler is already a ``DistributedSampler``, and for an
    ``IterableDataset`` (which has no indices: shard it inside the dataset, by ``get_rank()``); a loader
    with a custom ``batch_sampler`` raises :class:`~cadence.errors.ConfigError`.
    """
    if not is_distributed() or isinstance(loader.sampler, DistributedSampler):
        return loader
    if isinstance(loader.dataset, IterableDataset):
        return loader
    if loader.batch_size is None or type(loader.batch_sampler) is not BatchSampler:
        raise ConfigError(
            "shard_dataloader: this DataLoader uses a custom batch_sampler; give it a DistributedSampler "
            "yourself (or use cadence.data.TensorLoader with rank= and world_size=)"
        )
    sampler = DistributedSampler(
        loader.dataset,
        num_replicas=get_world_size(),
        rank=get_rank(),
        shuffle=isinstance(loader.sampler, RandomSampler) if shuffle is None else shuffle,
        seed=seed,
        drop_last=drop_last,
    )
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor if loader.num_workers > 0 else None,
        persistent_workers=loader.persistent_workers,
    )
