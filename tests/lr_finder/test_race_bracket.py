"""Where the race's ladder of candidates ends: the sweep's minimum, and, when every candidate below a flat
sweep's minimum stalled, an octave below the sweep's divergence edge."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cadence.lr_finder import race, select_lr
from cadence.lr_finder.race import _edge_of_bracket, _top_of_bracket
from cadence.lr_finder.result import LRFinderResult, Trust
from cadence.schedules import one_cycle

LRS = list(np.geomspace(1e-6, 10.0, 100))


def sweep(losses):
    return SimpleNamespace(lrs=LRS, smoothed_losses=list(losses))


def flat_then_diverging(edge_lr: float = 1.0) -> np.ndarray:
    # measured on Fashion-MNIST cnn28 + SGD: 2.30 +- 0.005 all the way, the lowest point the first one,
    # and the loss only leaves its level for good from lr ~ 1
    generator = np.random.default_rng(0)
    losses = 2.303 + 0.002 * generator.standard_normal(100)
    losses[0] = 2.29
    edge = int(np.searchsorted(LRS, edge_lr))
    losses[edge:] = np.linspace(2.33, 2.6, 100 - edge)
    return losses


def test_a_clear_valley_tops_the_bracket_at_its_minimum_and_needs_no_fallback():
    x = np.log10(LRS)
    losses = 2.3 - 1.5 * np.exp(-((x + 1.5) ** 2))  # falls to 0.8 at lr = 10^-1.5, rises after
    top, why = _top_of_bracket(sweep(losses))
    assert top == pytest.approx(LRS[int(np.argmin(losses))])
    assert "lowest sweep loss" in why
    assert _edge_of_bracket(sweep(losses)) is None


def test_a_flat_sweep_falls_back_to_an_octave_below_the_divergence_edge():
    losses = flat_then_diverging()
    assert _top_of_bracket(sweep(losses))[0] == LRS[0]  # the noise minimum: the ladder would end at 1e-6
    top, why = _edge_of_bracket(sweep(losses))
    edge = int(np.searchsorted(LRS, 1.0))
    assert top == pytest.approx(LRS[edge] / 2)
    assert "divergence edge" in why


def test_a_flat_sweep_that_never_diverges_falls_back_to_its_last_lr():
    top, why = _edge_of_bracket(sweep([2.3] * 100))
    assert top == pytest.approx(LRS[-1])
    assert "never diverged" in why


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.weight * inputs


def test_when_every_candidate_stalls_the_race_is_run_again_below_the_edge(monkeypatch):
    flat = flat_then_diverging(edge_lr=0.5)
    fake = LRFinderResult(
        lrs=LRS,
        losses=list(flat),
        smoothed_losses=list(flat),
        suggestions={"valley": 0.1},
        method="valley",
        trust=Trust(agreement_decades=1.0, verdict="low", message="flat"),
        stop_reason="completed",
    )
    monkeypatch.setattr(race, "_run_sweep", lambda *args, **kwargs: fake)
    total_steps = 400
    model = Scalar()

    def squared(outputs, targets):
        return ((outputs - targets) ** 2).mean()

    selection = select_lr(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        squared,
        [(torch.ones(4), torch.zeros(4))] * 20,
        {"lr": one_cycle(max_lr="auto", total_steps=total_steps)},
        total_steps=total_steps,
        trainer_options={"metrics": ()},
    )
    edge = LRS[int(np.searchsorted(LRS, 0.5))]
    assert selection.candidates[-1] == pytest.approx(edge / 2)  # the second ladder, an octave below the edge
    assert selection.value > 1e-3  # not a value from the first ladder (6e-8 .. 1e-6), where nothing trains
    assert "divergence edge" in selection.reason
    assert selection.race_steps > total_steps  # both races are counted in the cost
