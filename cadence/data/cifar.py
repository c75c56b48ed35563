"""CIFAR-10 from its "python version" batches, read without running pickled code.

The batches (``data_batch_1`` … ``data_batch_5``, ``test_batch``) are Python pickles. Unpickling an
untrusted pickle can run arbitrary code, so they are read with :class:`SafeUnpickler`, which resolves only
the few globals a pickled numpy array needs and refuses everything else.

Looked for in: the directory ``path`` (the batches, or a ``cifar-10-batches-py`` folder in it, or the
``cifar-10-python.tar.gz`` archive) -- when given, only there: a ``path`` that does not exist or does not
hold the dataset is an error naming it --, else the cache ``~/.cache/cadence/cifar10/``, downloading the
archive from the official location with MD5 verification when ``download=True``.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadence.data.files import cache_dir, describe_files, download
from cadence.data.splits import DatasetSplits, TensorPair
from cadence.errors import ConfigError

__all__ = ["SafeUnpickler", "load_cifar10", "read_cifar_batch"]

URLS = ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = [f"data_batch_{index}" for index in range(1, 6)]
TEST_BATCHES = ["test_batch"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: The only globals a pickled numpy array refers to (numpy 1 and numpy 2 module names).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that only reconstructs numpy arrays and plain containers; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def read_cifar_batch(raw: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR batch (the pickled bytes) into uint8 images (N, 3, 32, 32) and int64 labels."""
    try:
        batch = SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        if str(error).startswith("refusing"):
            raise ConfigError(f"{origin}: unsafe pickle, not a CIFAR batch ({error})") from error
        raise ConfigError(f"{origin}: corrupt or truncated CIFAR batch ({error})") from error
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ConfigError(f"{origin}: corrupt or truncated CIFAR batch ({error!r})") from error
    if not isinstance(batch, dict):
        raise ConfigError(f"{origin}: expected a dict in the CIFAR batch, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise ConfigError(f"{origin}: CIFAR batch lacks 'data' (array) or 'labels'")
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ConfigError(
            f"{origin}: expected uint8 data of shape (N, 3072) and N labels, got {data.dtype} {data.shape} "
            f"and {len(labels)} labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ConfigError(f"{origin}: labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _batches_from_directory(directory: Path) -> dict[str, tuple[bytes, str]] | str:
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    if (directory / ARCHIVE).is_file() and not (directory / TRAIN_BATCHES[0]).is_file():
        return _batches_from_archive(directory / ARCHIVE)
    if not directory.is_dir():
        return "no such directory"
    missing = [name for name in TRAIN_BATCHES + TEST_BATCHES if not (directory / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    return {
        name: ((directory / name).read_bytes(), str(directory / name))
        for name in TRAIN_BATCHES + TEST_BATCHES
    }


def _batches_from_archive(archive: Path) -> dict[str, tuple[bytes, str]] | str:
    """Read the batches straight out of the tar.gz archive (nothing is extracted to disk)."""
    found: dict[str, tuple[bytes, str]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in TRAIN_BATCHES + TEST_BATCHES:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        found[name] = (handle.read(), f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ConfigError(f"{archive}: corrupt or truncated archive ({error})") from error
    missing = [name for name in TRAIN_BATCHES + TEST_BATCHES if name not in found]
    return found if not missing else f"archive lacks {', '.join(missing)}"


def _pair(batches: dict[str, tuple[bytes, str]], names: list[str]) -> TensorPair:
    images, labels = zip(*(read_cifar_batch(*batches[name]) for name in names))
    inputs = torch.from_numpy(np.concatenate(images).astype(np.float32) / 255.0)
    return TensorPair(inputs, torch.from_numpy(np.concatenate(labels)))


def load_cifar10(path: str | None = None, download: bool = True) -> DatasetSplits:
    """CIFAR-10 (Krizhevsky 2009): 50000 + 10000 colour 32×32 images in 10 classes, floats in [0, 1]."""
    tried: list[str] = []
    batches: dict[str, tuple[bytes, str]] | str | None = None
    if path is not None:
        batches = _batches_from_directory(Path(path).expanduser())
        if isinstance(batches, str):
            raise ConfigError(f"data.path {str(path)!r} does not hold cifar10: {batches}")
    if not isinstance(batches, dict):
        cached = cache_dir("cifar10")
        batches = _batches_from_directory(cached)
        if isinstance(batches, str):
            tried.append(f"{cached} ({batches})")
            if download:
                try:
                    archive = _download_archive(cached)
                    batches = _batches_from_archive(archive)
                    if isinstance(batches, str):
                        tried.append(f"{archive} ({batches})")
                except ConfigError as error:
                    tried.append(f"download ({error})")
            else:
                tried.append("download (disabled by download=false)")
    if not isinstance(batches, dict):
        raise ConfigError("cifar10 not found; tried: " + "; ".join(tried))
    train, test = _pair(batches, TRAIN_BATCHES), _pair(batches, TEST_BATCHES)
    return DatasetSplits(
        train=train,
        test=test,
        num_classes=10,
        input_shape=(3, 32, 32),
        name="cifar10",
        meta={"classes": CLASSES, "source": path or str(cache_dir("cifar10")), "files": _files_read(batches)},
    )


def _files_read(batches: dict[str, tuple[bytes, str]]) -> list[dict[str, Any]]:
    """The files the batches came from (each batch file, or the one archive), with their SHA-256."""
    marker = f"{ARCHIVE}:"
    paths = {
        origin.split(marker, 1)[0] + ARCHIVE if marker in origin else origin for _, origin in batches.values()
    }
    return describe_files({Path(path).name: Path(path) for path in sorted(paths)})


def _download_archive(directory: Path) -> Path:
    return download(URLS, directory / ARCHIVE, md5=ARCHIVE_MD5)
