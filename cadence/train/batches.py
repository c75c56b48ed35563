"""Where the data protocol used to live: :mod:`cadence.data.batches` (re-exported here, unchanged)."""

from cadence.data.batches import count_batches, epoch_batches, move_to_device, split_batch

__all__ = ["count_batches", "epoch_batches", "move_to_device", "split_batch"]
