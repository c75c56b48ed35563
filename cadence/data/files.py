"""Finding, downloading and verifying dataset files.

Downloads happen only when a dataset is not found locally, use the standard library (``urllib``), go to a
temporary name first and are renamed into place only after their checksum matched, so an interrupted or
tampered download never leaves a file that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError

__all__ = [
    "cache_dir",
    "describe_files",
    "describe_folder",
    "download",
    "fetch",
    "file_digest",
    "file_sha256",
    "folder_sha256",
]

#: Files at least this large keep their SHA-256 in ``cache_dir("sha256.json")``, keyed by path, size and
#: modification time, so a large dataset is hashed once, not on every run.
PERSISTENT_HASH_BYTES = 16 << 20
_HASHES: dict[tuple[str, int, int], str] = {}


def cache_dir(*parts: str) -> Path:
    """Directory where cadence caches data: ``$CADENCE_CACHE``, else ``$XDG_CACHE_HOME/cadence``, else
    ``~/.cache/cadence``; ``parts`` are appended (not created)."""
    root = os.environ.get("CADENCE_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "cadence"
    return base.joinpath(*parts)


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file (``md5`` or ``sha256``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, computed once per (path, size, modification time).

    Kept in memory for the process, and for files of at least :data:`PERSISTENT_HASH_BYTES` also in
    ``cache_dir("sha256.json")``: a changed file (new size or mtime) is hashed again.
    """
    path = Path(path).resolve()
    status = path.stat()
    key = (str(path), status.st_size, status.st_mtime_ns)
    if key in _HASHES:
        return _HASHES[key]
    large = status.st_size >= PERSISTENT_HASH_BYTES
    store = cache_dir("sha256.json")
    stored: dict[str, Any] = {}
    if large:
        with contextlib.suppress(OSError, ValueError):
            stored = json.loads(store.read_text(encoding="utf-8"))
        entry = stored.get(key[0]) if isinstance(stored, dict) else None
        if isinstance(entry, dict) and [entry.get("bytes"), entry.get("mtime_ns")] == list(key[1:]):
            _HASHES[key] = str(entry["sha256"])
            return _HASHES[key]
    digest = file_digest(path, "sha256")
    _HASHES[key] = digest
    if large:
        stored = stored if isinstance(stored, dict) else {}
        stored[key[0]] = {"bytes": key[1], "mtime_ns": key[2], "sha256": digest}
        with contextlib.suppress(OSError):  # the cache only saves time; a read-only home is fine
            store.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=store.parent, prefix=".sha256.", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as output:
                json.dump(stored, output)
            os.replace(temporary, store)
    return digest


def describe_files(files: Mapping[str, str | Path]) -> list[dict[str, Any]]:
    """``{"name", "path", "sha256", "bytes"}`` per file read (``files``: name -> path), for run records."""
    described = []
    for name, path in files.items():
        path = Path(path)
        described.append(
            {
                "name": name,
                "path": str(path.resolve()),
                "sha256": file_sha256(path),
                "bytes": path.stat().st_size,
            }
        )
    return described


def folder_sha256(root: str | Path, suffixes: tuple[str, ...] | list[str]) -> tuple[str, int, int]:
    """``(sha256, files, bytes)`` of the files with one of ``suffixes`` (any case) in the sub-folders of
    ``root`` that do not start with a dot, searched recursively: one digest over each file's relative path
    and SHA-256, in sorted order."""
    root = Path(root)
    wanted = {suffix.lower() for suffix in suffixes}
    files = sorted(
        file
        for child in root.iterdir()
        if child.is_dir() and not child.name.startswith(".")
        for file in child.rglob("*")
        if file.suffix.lower() in wanted and file.is_file()
    )
    digest = hashlib.sha256()
    total = 0
    for file in files:
        digest.update(f"{file.relative_to(root).as_posix()}\t{file_sha256(file)}\n".encode())
        total += file.stat().st_size
    return digest.hexdigest(), len(files), total


def describe_folder(name: str, root: str | Path, suffixes: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """One run-record entry for a folder of many files (see :func:`folder_sha256`), ``kind = "folder"``."""
    digest, count, total = folder_sha256(root, suffixes)
    return {
        "name": name,
        "path": str(Path(root).resolve()),
        "kind": "folder",
        "suffixes": list(suffixes),
        "sha256": digest,
        "files": count,
        "bytes": total,
    }


def fetch(url: str, destination: Path, timeout: float = 30.0) -> None:
    """Copy ``url`` to ``destination`` (any scheme urllib knows: https, http, file).

    Kept as its own function so tests can replace it and never touch the network.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as handle:
        shutil.copyfileobj(response, handle)


def download(
    urls: list[str], destination: Path, *, md5: str | None = None, sha256: str | None = None
) -> Path:
    """Download the first of ``urls`` that works to ``destination`` and verify its checksum.

    Each URL is tried in turn (mirrors). A checksum mismatch counts as a failure of that URL. Raises
    :class:`ConfigError` listing every URL with the reason it failed.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in urls:
        handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=destination.name + ".")
        os.close(handle)
        temporary = Path(temporary_name)
        try:
            fetch(url, temporary)
            if md5 is not None and (actual := file_digest(temporary, "md5")) != md5:
                failures.append(f"{url}: MD5 {actual} does not match the published {md5}")
                continue
            if sha256 is not None and (actual := file_digest(temporary, "sha256")) != sha256:
                failures.append(f"{url}: SHA-256 {actual} does not match the published {sha256}")
                continue
            os.replace(temporary, destination)
            return destination
        except OSError as error:  # URLError, HTTPError and timeouts are OSErrors
            failures.append(f"{url}: {error}")
        finally:
            temporary.unlink(missing_ok=True)
    raise ConfigError(f"could not download {destination.name}: " + "; ".join(failures))
