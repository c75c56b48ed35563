"""LRFinderResult: JSON round trip, summary table, plot."""

from __future__ import annotations

import math

import pytest
from torch import nn

from cadence.lr_finder import LRFinderResult, find_lr


@pytest.fixture
def result(model, optimizer, batches) -> LRFinderResult:
    return find_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        end_lr=1.0,
        num_steps=15,
        repeats=2,
        progress=False,
    )


def test_json_round_trip(result, tmp_path):
    path = result.save_json(tmp_path / "nested" / "finder.json", note="kept")
    loaded = LRFinderResult.from_json(path)
    assert loaded.to_dict() == result.to_dict()
    assert loaded.suggestion == result.suggestion
    assert loaded.trust.verdict == result.trust.verdict
    assert len(loaded.curves) == 2


def test_round_trip_keeps_non_finite_losses_as_nan(result):
    data = result.to_dict()
    data["losses"][-1] = None
    assert math.isnan(LRFinderResult.from_dict(data).losses[-1])


def test_summary_lists_every_method_and_the_verdict(result):
    text = result.summary()
    for name in result.suggestions:
        assert name in text
    assert "<- suggestion" in text
    assert f"trust: {result.trust.verdict}" in text
    assert str(result) == text


def test_suggestion_falls_back_when_the_method_has_no_value(result):
    result.suggestions.pop("valley")
    assert result.suggestion == result.suggestions["steepest"]


@pytest.mark.slow  # matplotlib's first import is slow on a busy CPU
def test_plot_writes_a_png(result, tmp_path):
    pytest.importorskip("matplotlib")
    path = result.plot(tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
