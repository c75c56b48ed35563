"""Fashion-MNIST subsets for the benchmarks, read straight from the gzipped IDX files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

DEFAULT_DIRECTORY = Path("/usr/share/datasets/fashion-mnist")


def read_idx_gz(path: Path) -> np.ndarray:
    """Read one (gzipped) IDX file: magic (0, 0, type, ndim), big-endian uint32 dims, then uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_subset(
    n_train: int, n_test: int, seed: int = 0, directory: Path = DEFAULT_DIRECTORY
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random class-mixed subsets: float images in [0, 1] of shape (N, 1, 28, 28) and int64 labels."""
    splits = []
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        images = read_idx_gz(directory / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx_gz(directory / f"{prefix}-labels-idx1-ubyte.gz")
        order = np.random.default_rng(seed).permutation(len(labels))[:count]
        splits.append(torch.from_numpy(images[order].astype(np.float32) / 255.0).unsqueeze(1))
        splits.append(torch.from_numpy(labels[order].astype(np.int64)))
    return splits[0], splits[1], splits[2], splits[3]
