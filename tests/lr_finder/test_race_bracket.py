"""Where the race's ladder of candidates ends: the sweep's minimum, or the divergence edge when the
sweep's loss never clearly fell (a model still on its initial plateau after the sweep's steps)."""

from types import SimpleNamespace

import numpy as np
import pytest

from cadence.lr_finder.race import _top_of_bracket, candidate_ladder

LRS = list(np.geomspace(1e-6, 10.0, 100))


def sweep(losses):
    return SimpleNamespace(lrs=LRS, smoothed_losses=list(losses))


def test_a_clear_valley_tops_the_bracket_at_its_minimum():
    x = np.log10(LRS)
    losses = 2.3 - 1.5 * np.exp(-((x + 1.5) ** 2))  # falls to 0.8 at lr = 10^-1.5, rises after
    top, why = _top_of_bracket(sweep(losses))
    assert top == pytest.approx(LRS[int(np.argmin(losses))])
    assert "lowest sweep loss" in why


def test_a_flat_sweep_whose_noise_minimum_is_at_the_start_is_bracketed_below_the_divergence_edge():
    # measured on Fashion-MNIST cnn28 + SGD: 2.30 +- 0.005 all the way, the lowest point the first one,
    # and the loss only leaves its level for good from lr ~ 1
    generator = np.random.default_rng(0)
    losses = 2.303 + 0.002 * generator.standard_normal(100)
    losses[0] = 2.29
    edge = int(np.searchsorted(LRS, 1.0))
    losses[edge:] = np.linspace(2.33, 2.6, 100 - edge)
    top, why = _top_of_bracket(sweep(losses))
    assert top == pytest.approx(LRS[edge] / 2)  # an octave below the edge
    assert "never clearly fell" in why
    ladder = candidate_ladder(top, 5)
    assert ladder[0] == pytest.approx(top / 16)
    assert 0.02 < ladder[0] < 0.05


def test_a_flat_sweep_that_never_diverges_ends_at_the_last_lr():
    top, why = _top_of_bracket(sweep([2.3] * 100))
    assert top == pytest.approx(LRS[-1])
    assert "neither fell nor diverged" in why
