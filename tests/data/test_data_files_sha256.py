"""File checksums for run records: computed once per (path, size, mtime), large ones kept on disk."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from cadence.data import files


def test_large_files_are_hashed_once_and_again_only_when_they_change(tmp_path, monkeypatch, offline_cache):
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 1000)
    monkeypatch.setattr(files, "PERSISTENT_HASH_BYTES", 100)
    monkeypatch.setattr(files, "_HASHES", {})
    assert files.file_sha256(path) == hashlib.sha256(b"a" * 1000).hexdigest()
    stored = json.loads((offline_cache / "sha256.json").read_text())
    assert stored[str(path.resolve())]["sha256"] == hashlib.sha256(b"a" * 1000).hexdigest()

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed again")

    monkeypatch.setattr(files, "_HASHES", {})  # a new process: only the file cache is left
    monkeypatch.setattr(files, "file_digest", no_hashing)
    assert files.file_sha256(path) == hashlib.sha256(b"a" * 1000).hexdigest()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(1, 1))  # same size, other modification time
    with pytest.raises(AssertionError, match="hashed again"):
        files.file_sha256(path)
