"""Suggestion rules on synthetic smoothed curves whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cadence.lr_finder import minimum, steepest, suggest, valley
from cadence.lr_finder.result import LRCurve, assess_trust

LRS = np.geomspace(1e-6, 1.0, 61)  # 0.1 decade per point: lrs[i] = 10 ** (-6 + i / 10)


def lr_at(index: int) -> float:
    return float(LRS[index])


def valley_curve() -> np.ndarray:
    """Rises over points 0..10, falls strictly over 10..40, rises after 40."""
    index = np.arange(len(LRS), dtype=float)
    rise = 2.0 + 0.01 * index
    fall = 2.1 - 0.05 * (index - 10)
    after = 0.6 + 0.2 * (index - 40)
    return np.where(index <= 10, rise, np.where(index <= 40, fall, after))


def test_valley_is_two_thirds_down_the_longest_descent():
    assert valley(LRS, valley_curve()) == pytest.approx(lr_at(30))


def test_valley_ignores_short_descents_and_noise_on_the_plateau():
    curve = valley_curve()
    curve[2:5] = [1.8, 1.7, 1.6]  # a short dip early on
    assert valley(LRS, curve) == pytest.approx(lr_at(30))


def test_steepest_finds_the_inflection_of_a_descent():
    log_lr = np.log10(LRS)
    curve = 2.0 - np.tanh(log_lr + 3.0)  # steepest descent at log10(lr) = -3, i.e. index 30
    curve[50:] = curve[49] + 0.5 * np.arange(1, 12)  # minimum at 49, then divergence
    assert steepest(LRS, curve) == pytest.approx(lr_at(30))


def test_steepest_looks_only_before_the_minimum():
    log_lr = np.log10(LRS)
    curve = 2.0 - 0.5 * np.tanh(2 * (log_lr + 4.0))  # gentle descent centred at index 20, lowest at 35
    curve[36:46] = curve[35] + 0.3 * np.arange(1, 11)  # divergence ...
    curve[46:51] = curve[45] - 0.5 * np.arange(1, 6)  # ... then a steep drop that stays above the minimum
    curve[51:] = curve[50] + 1.0
    assert int(np.argmin(curve)) == 35
    assert steepest(LRS, curve) == pytest.approx(lr_at(20))


def test_minimum_is_the_lowest_point_divided_by_ten():
    assert minimum(LRS, valley_curve()) == pytest.approx(lr_at(40) / 10)


def test_non_finite_tail_is_ignored():
    curve = valley_curve()
    curve[45] = math.nan
    curve[46:] = -100.0  # after a non-finite point nothing counts, however low
    assert minimum(LRS, curve) == pytest.approx(lr_at(40) / 10)
    assert set(suggest(LRS, curve)) == {"valley", "steepest", "minimum"}


def test_empty_and_tiny_curves():
    assert suggest([], []) == {}
    assert suggest([1e-3], [math.inf]) == {}
    assert minimum([1e-3, 1e-2], [1.0, 0.5]) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="same length"):
        valley([1e-3, 1e-2], [1.0])


def _curve(suggestions: dict[str, float], repeat: int = 0) -> LRCurve:
    return LRCurve(list(LRS), list(valley_curve()), list(valley_curve()), "diverged", suggestions, repeat)


def test_trust_high_when_methods_and_repeats_agree():
    suggestions = {"valley": 1e-2, "steepest": 5e-3, "minimum": 2e-2}
    curves = [_curve({"valley": v}, i) for i, v in enumerate([1e-2, 1.1e-2, 0.9e-2])]
    trust = assess_trust(suggestions, curves, "valley")
    assert trust.verdict == "high"
    assert trust.agreement_decades == pytest.approx(math.log10(4))
    assert trust.geometric_mean == pytest.approx(10 ** np.mean(np.log10([1e-2, 1.1e-2, 0.9e-2])))
    assert trust.spread_log10_std == pytest.approx(np.std(np.log10([1e-2, 1.1e-2, 0.9e-2]), ddof=1))
    assert trust.message.startswith("high: ")


def test_trust_low_when_repeats_disagree_or_methods_disagree():
    curves = [_curve({"valley": v}, i) for i, v in enumerate([1e-3, 1e-2, 1e-1])]
    assert assess_trust({"valley": 1e-2, "minimum": 2e-2}, curves, "valley").verdict == "low"
    far = assess_trust({"valley": 1e-4, "minimum": 1e-1}, [_curve({"valley": 1e-4})], "valley")
    assert far.verdict == "low"
    assert far.spread_log10_std is None


def test_trust_low_when_the_loss_never_falls():
    flat = LRCurve(list(LRS), [1.0] * 61, [1.0] * 61, "completed", {"valley": 1e-3})
    assert assess_trust({"valley": 1e-3}, [flat], "valley").verdict == "low"


def test_steepest_ignores_the_noisy_start_of_the_smoothed_curve():
    log_lr = np.log10(LRS)
    curve = 2.0 - 0.2 * np.tanh(2 * (log_lr + 2.0))  # the real descent, centred at index 40
    curve[:6] += np.array([0.8, 0.5, 0.3, 0.15, 0.05, 0.02])  # the first few batches' average settling down
    curve[55:] = curve[54] + 0.3 * np.arange(1, 7)
    assert steepest(LRS, curve) == pytest.approx(lr_at(40))
