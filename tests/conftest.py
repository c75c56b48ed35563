"""Fixtures and helpers shared by the whole suite.

The suite's folders mirror the package; helpers that tests in several folders use (``ensembles/
ensemble_helpers.py``, ``transfer/transfer_helpers.py``) are imported by their path under ``tests/``
(``from ensembles.ensemble_helpers import run_loop``), which is why this folder is put on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def one_thread():
    """Run the test on one torch thread: tiny tensors only get slower when OpenMP threads fight over a
    shared CPU. Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
