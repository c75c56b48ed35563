"""MNIST and Fashion-MNIST from IDX files (plain or gzipped).

Where the files are looked for, in order:

1. the directory given as ``path`` -- when given, only there: a ``path`` that does not exist or does not
   hold the four files is an error naming it (no silent fall-back to another copy);
2. without ``path``, the system dataset directory (Debian's ``dataset-fashion-mnist`` package installs
   ``/usr/share/datasets/fashion-mnist/``);
3. the cache (``~/.cache/cadence/<name>/``), downloading the files there from the official location with
   MD5 verification when ``download=True`` (the default) and the machine is online.

If nothing works the error lists every place tried and why it failed.

IDX format (LeCun et al.): two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions,
then each dimension as a big-endian uint32, then the data in row-major order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from cadence.data.files import cache_dir, describe_files, download
from cadence.data.splits import DatasetSplits, TensorPair
from cadence.errors import ConfigError

__all__ = ["load_fashion_mnist", "load_idx_splits", "load_mnist", "read_idx"]

SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: name -> mirrors (base URLs, tried in order), MD5 of each gzipped file as published, system directories.
SOURCES: dict[str, dict] = {
    "fashion-mnist": {
        "mirrors": [
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "system": ["/usr/share/datasets/fashion-mnist"],
        "classes": [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    },
    "mnist": {
        "mirrors": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "system": ["/usr/share/datasets/mnist"],
        "classes": [str(digit) for digit in range(10)],
    },
}

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ConfigError(f"{path}: corrupt or truncated gzip file ({error})") from error
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array, checking header and length."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ConfigError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = _IDX_TYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ConfigError(f"{path}: truncated IDX header (expected {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ConfigError(
            f"{path}: IDX data has {len(raw) - header} bytes but its header {tuple(shape)} "
            f"promises {expected}"
            " (truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path) -> dict[str, Path] | str:
    """Map split file keys to existing files in ``directory``, or return why that failed."""
    if not directory.is_dir():
        return "no such directory"
    found: dict[str, Path] = {}
    missing = []
    for key, stem in SPLIT_FILES.items():
        candidates = [
            directory / stem,
            directory / f"{stem}.gz",
            directory / stem.replace("-idx", ".idx"),
        ]
        existing = next((candidate for candidate in candidates if candidate.is_file()), None)
        if existing is None:
            missing.append(f"{stem}[.gz]")
        else:
            found[key] = existing
    return found if not missing else f"missing {', '.join(missing)}"


def _download_all(name: str, directory: Path) -> dict[str, Path] | str:
    source = SOURCES[name]
    try:
        for filename, md5 in source["md5"].items():
            target = directory / filename
            if not target.is_file():
                download([base + filename for base in source["mirrors"]], target, md5=md5)
    except ConfigError as error:
        return str(error)
    return _find(directory)


def load_idx_splits(files: dict[str, Path]) -> tuple[TensorPair, TensorPair]:
    """Read the four IDX files into train and test pairs: images as float in [0, 1], shape (N, 1, H, W)."""
    pairs = []
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_images"])
        labels = read_idx(files[f"{split}_labels"])
        if images.ndim != 3 or labels.ndim != 1:
            raise ConfigError(
                f"{files[f'{split}_images']}: expected images (N, H, W) and labels (N,), "
                f"got {images.shape} and {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"{files[f'{split}_labels']}: {labels.shape[0]} labels for {images.shape[0]} images"
            )
        inputs = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        pairs.append(TensorPair(inputs, torch.from_numpy(labels.astype(np.int64))))
    return pairs[0], pairs[1]


def _load(name: str, path: str | None, download_missing: bool) -> DatasetSplits:
    source = SOURCES[name]
    tried: list[str] = []
    if path is not None:
        given = _find(Path(path).expanduser())
        if isinstance(given, str):
            raise ConfigError(
                f"data.path {str(path)!r} does not hold {name}: {given} (expected the four IDX files "
                f"{', '.join(f'{stem}[.gz]' for stem in SPLIT_FILES.values())})"
            )
    directories = [Path(path).expanduser()] if path is not None else [Path(p) for p in source["system"]]
    files: dict[str, Path] | None = None
    for directory in directories:
        result = _find(directory)
        if isinstance(result, dict):
            files = result
            break
        tried.append(f"{directory} ({result})")
    if files is None:
        cached = cache_dir(name)
        result = _find(cached)
        if isinstance(result, str):
            tried.append(f"{cached} ({result})")
            if download_missing:
                result = _download_all(name, cached)
                if isinstance(result, str):
                    tried.append(f"download ({result})")
            else:
                tried.append("download (disabled by download=false)")
        if isinstance(result, dict):
            files = result
    if files is None:
        raise ConfigError(
            f"{name} not found; tried: " + "; ".join(tried) + ". Pass path='DIR' with the four IDX files."
        )
    train, test = load_idx_splits(files)
    labels = torch.cat([train.targets, test.targets])
    num_classes = len(source["classes"])
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"{files['train_labels']}: labels outside 0..{num_classes - 1}")
    return DatasetSplits(
        train=train,
        test=test,
        num_classes=num_classes,
        input_shape=tuple(train.inputs.shape[1:]),
        name=name,
        meta={
            "classes": source["classes"],
            "source": str(files["train_images"].parent),
            "files": describe_files({file.name: file for file in files.values()}),
        },
    )


def load_fashion_mnist(path: str | None = None, download: bool = True) -> DatasetSplits:
    """Fashion-MNIST (Xiao et al. 2017): 60000 + 10000 grayscale 28×28 images of 10 clothing classes."""
    return _load("fashion-mnist", path, download)


def load_mnist(path: str | None = None, download: bool = True) -> DatasetSplits:
    """MNIST (LeCun et al. 1998): 60000 + 10000 grayscale 28×28 handwritten digits."""
    return _load("mnist", path, download)
