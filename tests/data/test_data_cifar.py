import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from cadence.data import cifar, load
from cadence.errors import ConfigError


def batch_bytes(count: int, seed: int) -> tuple[bytes, np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, count).tolist()
    batch = {b"batch_label": b"test", b"labels": labels, b"data": data, b"filenames": [b"x"] * count}
    return pickle.dumps(batch, protocol=2), data, labels


def write_batches(directory, count: int = 3):
    directory.mkdir(parents=True, exist_ok=True)
    contents = {}
    for seed, name in enumerate(cifar.TRAIN_BATCHES + cifar.TEST_BATCHES):
        raw, data, labels = batch_bytes(count, seed)
        (directory / name).write_bytes(raw)
        contents[name] = (data, labels)
    return contents


def test_cifar_batches_from_directory(tmp_path):
    contents = write_batches(tmp_path / "cifar-10-batches-py")
    data = load("cifar10", path=str(tmp_path), download=False)
    assert data.train.inputs.shape == (15, 3, 32, 32)
    assert data.test.inputs.shape == (3, 3, 32, 32)
    first, labels = contents["data_batch_1"]
    expected = torch.from_numpy(first.reshape(-1, 3, 32, 32).astype(np.float32) / 255)
    assert torch.equal(data.train.inputs[:3], expected)
    assert data.train.targets[:3].tolist() == labels
    assert data.meta["classes"][0] == "airplane"


def test_cifar_records_the_batch_files_and_refuses_a_wrong_path(tmp_path, monkeypatch, offline_cache):
    write_batches(tmp_path / "cifar-10-batches-py")
    data = load("cifar10", path=str(tmp_path), download=False)
    recorded = {entry["name"]: entry["sha256"] for entry in data.meta["files"]}
    assert sorted(recorded) == sorted(cifar.TRAIN_BATCHES + cifar.TEST_BATCHES)
    raw = (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    assert recorded["test_batch"] == hashlib.sha256(raw).hexdigest()
    write_batches(offline_cache / "cifar10")  # a cached copy must not stand in for a mistyped path
    with pytest.raises(ConfigError, match=f"data.path '{tmp_path / 'typo'}' does not hold cifar10"):
        load("cifar10", path=str(tmp_path / "typo"), download=False)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_batches(tmp_path / "batches")
    (tmp_path / "batches" / "data_batch_2").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    with pytest.raises(ConfigError, match=r"data_batch_2.*refusing to load global (posix|nt)\.system"):
        load("cifar10", path=str(tmp_path / "batches"), download=False)
    assert not (tmp_path / "owned.txt").exists()


def test_truncated_batch_names_the_file(tmp_path):
    write_batches(tmp_path)
    target = tmp_path / "test_batch"
    target.write_bytes(target.read_bytes()[:500])
    with pytest.raises(ConfigError, match=r"test_batch.*corrupt or truncated"):
        load("cifar10", path=str(tmp_path), download=False)


def test_wrong_shape_is_refused():
    raw = pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2)
    with pytest.raises(ConfigError, match=r"\(N, 3072\)"):
        cifar.read_cifar_batch(raw, "batch")


def make_archive(path, source_directory):
    with tarfile.open(path, "w:gz") as tar:
        for name in cifar.TRAIN_BATCHES + cifar.TEST_BATCHES:
            tar.add(source_directory / name, arcname=f"cifar-10-batches-py/{name}")


def test_archive_is_read_without_extracting(tmp_path):
    write_batches(tmp_path / "raw")
    (tmp_path / "archive").mkdir()
    make_archive(tmp_path / "archive" / cifar.ARCHIVE, tmp_path / "raw")
    data = load("cifar10", path=str(tmp_path / "archive"), download=False)
    assert len(data.train) == 15
    assert sorted(path.name for path in (tmp_path / "archive").iterdir()) == [cifar.ARCHIVE]


def test_download_verifies_md5(tmp_path, monkeypatch, offline_cache):
    write_batches(tmp_path / "raw")
    archive = tmp_path / "served" / cifar.ARCHIVE
    archive.parent.mkdir()
    make_archive(archive, tmp_path / "raw")
    monkeypatch.setattr(cifar, "URLS", [archive.as_uri()])
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", "f" * 32)
    with pytest.raises(ConfigError, match="MD5"):
        load("cifar10")
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    data = load("cifar10")
    assert len(data.test) == 3
    assert (offline_cache / "cifar10" / cifar.ARCHIVE).is_file()


def test_safe_unpickler_allows_arrays_only():
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    loaded = cifar.SafeUnpickler(io.BytesIO(pickle.dumps(array, protocol=2))).load()
    assert np.array_equal(loaded, array)
    with pytest.raises(pickle.UnpicklingError):
        cifar.SafeUnpickler(io.BytesIO(pickle.dumps(Exploit()))).load()
