import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from cadence.data import idx, load
from cadence.errors import ConfigError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(directory, *, compress: bool, train: int = 6, test: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (train,)),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (test,)),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        raw = idx_bytes(array)
        if compress:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_directory_loads_images_and_labels(tmp_path, compress):
    arrays = write_idx_set(tmp_path / "fashion", compress=compress)
    data = load("fashion-mnist", path=str(tmp_path / "fashion"), download=False)
    assert data.train.inputs.shape == (6, 1, 28, 28)
    assert data.test.inputs.shape == (4, 1, 28, 28)
    assert data.train.inputs.dtype == torch.float32
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.float32) / 255)
    assert torch.equal(data.train.inputs[:, 0], expected)
    assert data.train.targets.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.num_classes == 10
    assert data.input_shape == (1, 28, 28)
    assert data.meta["classes"][9] == "Ankle boot"


def test_truncated_idx_names_the_file(tmp_path):
    write_idx_set(tmp_path, compress=False)
    target = tmp_path / "train-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte.*truncated or corrupt"):
        load("mnist", path=str(tmp_path), download=False)


def test_truncated_gzip_names_the_file(tmp_path):
    write_idx_set(tmp_path, compress=True)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:20])
    with pytest.raises(ConfigError, match=r"t10k-labels-idx1-ubyte.gz.*gzip"):
        load("mnist", path=str(tmp_path), download=False)


def test_bad_magic_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 10)
    with pytest.raises(ConfigError, match="not an IDX file"):
        idx.read_idx(path)


def test_labels_and_images_must_match(tmp_path):
    write_idx_set(tmp_path, compress=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5)))
    with pytest.raises(ConfigError, match="5 labels for 6 images"):
        load("mnist", path=str(tmp_path), download=False)


def test_not_found_lists_everything_tried(tmp_path, monkeypatch):
    monkeypatch.setitem(idx.SOURCES["mnist"], "system", [str(tmp_path / "system")])
    with pytest.raises(ConfigError) as error:
        load("mnist", download=False)
    message = str(error.value)
    assert str(tmp_path / "system") in message
    assert "download=false" in message


@pytest.mark.parametrize("given", ["missing", "empty", "partial"])
def test_a_given_path_without_the_dataset_is_an_error_not_a_fallback(tmp_path, monkeypatch, given):
    write_idx_set(tmp_path / "system", compress=False)  # a good copy elsewhere must not be used instead
    monkeypatch.setitem(idx.SOURCES["mnist"], "system", [str(tmp_path / "system")])
    directory = tmp_path / given
    if given == "empty":
        directory.mkdir()
    elif given == "partial":
        write_idx_set(directory, compress=False)
        (directory / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError) as error:
        load("mnist", path=str(directory), download=False)
    message = str(error.value)
    assert message.startswith(f"data.path '{directory}' does not hold mnist: ")
    expected = "no such directory" if given == "missing" else "missing "
    assert expected in message
    if given == "partial":
        assert "missing t10k-labels-idx1-ubyte[.gz]" in message


def test_the_files_read_are_recorded_with_their_sha256(tmp_path):
    write_idx_set(tmp_path / "fashion", compress=True)
    data = load("fashion-mnist", path=str(tmp_path / "fashion"), download=False)
    recorded = {entry["name"]: entry for entry in data.meta["files"]}
    assert sorted(recorded) == sorted(f"{stem}.gz" for stem in idx.SPLIT_FILES.values())
    for name, entry in recorded.items():
        raw = (tmp_path / "fashion" / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(raw).hexdigest()
        assert entry["bytes"] == len(raw)
        assert entry["path"] == str((tmp_path / "fashion" / name).resolve())


def test_download_from_mirror_with_checksums(tmp_path, monkeypatch, offline_cache):
    mirror = tmp_path / "mirror"
    arrays = write_idx_set(mirror, compress=True)
    md5 = {f"{stem}.gz": hashlib.md5((mirror / f"{stem}.gz").read_bytes()).hexdigest() for stem in arrays}
    monkeypatch.setitem(idx.SOURCES["mnist"], "system", [])
    monkeypatch.setitem(idx.SOURCES["mnist"], "md5", md5)
    monkeypatch.setitem(
        idx.SOURCES["mnist"], "mirrors", ["https://example.invalid/mnist/", mirror.as_uri() + "/"]
    )
    data = load("mnist")
    assert len(data.train) == 6
    assert (offline_cache / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert data.train.targets.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_download_with_wrong_checksum_is_rejected(tmp_path, monkeypatch, offline_cache):
    mirror = tmp_path / "mirror"
    arrays = write_idx_set(mirror, compress=True)
    monkeypatch.setitem(idx.SOURCES["mnist"], "system", [])
    monkeypatch.setitem(idx.SOURCES["mnist"], "md5", {f"{stem}.gz": "0" * 32 for stem in arrays})
    monkeypatch.setitem(idx.SOURCES["mnist"], "mirrors", [mirror.as_uri() + "/"])
    with pytest.raises(ConfigError, match="does not match the published"):
        load("mnist")
    assert not list((offline_cache / "mnist").glob("*.gz"))  # nothing unverified is left behind


def test_offline_download_failure_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(idx.SOURCES["mnist"], "system", [])
    with pytest.raises(ConfigError, match=r"could not download.*network disabled"):
        load("mnist")
