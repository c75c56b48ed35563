"""Data tests never touch the network or the user's cache."""

import urllib.parse
from pathlib import Path

import pytest

from cadence.data import files


@pytest.fixture(autouse=True)
def offline_cache(tmp_path_factory, monkeypatch):
    """Cache in a temporary directory; only file:// URLs can be fetched."""
    cache = tmp_path_factory.mktemp("cadence-cache")
    monkeypatch.setenv("CADENCE_CACHE", str(cache))
    real_fetch = files.fetch

    def fetch(url: str, destination: Path, timeout: float = 30.0) -> None:
        if urllib.parse.urlparse(url).scheme != "file":
            raise OSError(f"network disabled in tests: {url}")
        real_fetch(url, destination, timeout)

    monkeypatch.setattr(files, "fetch", fetch)
    return cache
