"""Finding, downloading and verifying dataset files.

Downloads happen only when a dataset is not found locally, use the standard library (``urllib``), go to a
temporary name first and are renamed into place only after their checksum matched, so an interrupted or
tampered download never leaves a file that looks valid.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from cadence.errors import ConfigError

__all__ = ["cache_dir", "download", "fetch", "file_digest"]


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
