"""The LR race: its plan, its refinement, a problem whose best max_lr is known, and its record."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.lr_finder import LRSelection, holdout_split, select_lr
from cadence.lr_finder.race import RaceEntry, candidate_ladder, race_plan, refine
from cadence.schedules import compress, cosine, one_cycle


def test_plan_spends_the_budget_in_equal_rounds() -> None:
    assert race_plan(5, 1500) == [(5, 150), (3, 250)]
    assert race_plan(8, 1200) == [(8, 50), (4, 100), (3, 133)]
    assert race_plan(3, 300) == [(3, 100)]
    for _size, steps in race_plan(6, 20):
        assert steps >= 10  # no round shorter than MIN_ROUND_STEPS


def test_ladder_is_octaves_below_the_top() -> None:
    assert candidate_ladder(0.8, 4) == [0.1, 0.2, 0.4, 0.8]
    with pytest.raises(ConfigError, match="lr_top"):
        candidate_ladder(float("nan"), 3)


def entries(points):
    return [RaceEntry(lr, 1, 100, score, {}, "completed") for lr, score in points]


def test_refine_takes_the_parabola_vertex_between_neighbours() -> None:
    # scores exactly quadratic in log2(lr) with the minimum at log2(lr) = log2(0.2) + 0.25
    centre = math.log2(0.2) + 0.25
    points = [(lr, (math.log2(lr) - centre) ** 2) for lr in (0.1, 0.2, 0.4)]
    value, reason = refine(entries(points))
    assert value == pytest.approx(2**centre)
    assert "vertex" in reason
    # the best at the edge of the ladder: no extrapolation
    assert refine(entries([(0.1, 0.3), (0.2, 0.5), (0.4, 0.9)]))[0] == 0.1
    # a diverged neighbour: the best itself
    assert refine(entries([(0.1, 0.9), (0.2, 0.5), (0.4, math.inf)]))[0] == 0.2
    # a flat vertex far away is clamped to half an octave
    assert refine(entries([(0.1, 1.0), (0.2, 0.5), (0.4, 0.50001)]))[0] <= 0.2 * 2**0.5 + 1e-12


def test_compress_keeps_the_shape() -> None:
    schedule = one_cycle(0.1, total_steps=1000)
    short = compress(schedule, 10.0)
    for step in (0, 13, 29, 60, 99):
        assert short(step) == pytest.approx(schedule(step * 10))
    assert short.duration == pytest.approx(schedule.duration / 10)
    assert compress(cosine(1.0, 0.0, steps=100), 0.5)(100) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="factor"):
        compress(schedule, 0.0)


# ---------------------------------------------------------------------------------------- a known optimum
class Scalar(nn.Module):
    """``f(w) = w²``: plain gradient descent gives ``w ← w (1 - 2 lr)``, so the result of any LR sequence
    is known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.weight * inputs


def squared(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return ((outputs - targets) ** 2).mean()


def final_loss(lrs: np.ndarray) -> float:
    return float(np.prod((1.0 - 2.0 * lrs) ** 2))


def test_race_picks_the_known_best_max_lr() -> None:
    total_steps = 400
    batches = [(torch.ones(4), torch.zeros(4))] * 20
    model = Scalar()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = one_cycle(max_lr="auto", total_steps=total_steps)
    selection = select_lr(
        model,
        optimizer,
        squared,
        batches,
        {"lr": schedule},
        total_steps=total_steps,
        sweep_options={"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 60},
        trainer_options={"metrics": ()},
    )
    final_round = max(entry.round for entry in selection.entries)
    steps = next(entry.steps for entry in selection.entries if entry.round == final_round)
    # The best max_lr for the schedule the finalists were judged with, by brute force.
    short = compress(schedule.with_lr(1.0), total_steps / steps)
    shape = np.array([short(step) for step in range(steps)])
    grid = np.geomspace(selection.candidates[0], selection.candidates[-1], 400)
    best = grid[np.argmin([final_loss(lr * shape) for lr in grid])]
    assert abs(math.log2(selection.value / best)) < 0.25  # within a quarter octave
    # and the finalists' recorded scores are those closed-form losses
    for entry in (e for e in selection.entries if e.round == final_round):
        assert entry.score == pytest.approx(final_loss(entry.lr * shape), rel=1e-3, abs=1e-12)
    assert model.weight.item() == 1.0  # the caller's model is untouched


def test_selection_round_trips_through_json(tmp_path) -> None:
    batches = [(torch.ones(4), torch.zeros(4))] * 10
    selection = select_lr(
        Scalar(),
        torch.optim.SGD(Scalar().parameters(), lr=0.1),
        squared,
        batches,
        {"lr": one_cycle(max_lr="auto", total_steps=60)},
        total_steps=60,
        candidates=3,
        sweep_options={"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 30},
        trainer_options={"metrics": ()},
    )
    path = selection.save_json(tmp_path / "lr_selection.json")
    again = LRSelection.load_json(path)
    assert again.value == selection.value
    assert [e.lr for e in again.entries] == [e.lr for e in selection.entries]
    assert again.cost_fraction == pytest.approx(selection.cost_fraction)
    assert "round 1" in again.summary()
    assert f"max_lr = {selection.value:.4g}" in again.summary()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "grid"}, "lr_selection.method"),
        ({"budget": 0}, "lr_selection.budget"),
        ({"candidates": 1}, "lr_selection.candidates"),
        ({"val_fraction": 1.5}, "val_fraction"),
    ],
)
def test_bad_options_are_refused(options, message) -> None:
    batches = [(torch.ones(4), torch.zeros(4))] * 10
    with pytest.raises(ConfigError, match=message):
        select_lr(
            Scalar(),
            torch.optim.SGD(Scalar().parameters(), lr=0.1),
            squared,
            batches,
            {"lr": one_cycle(max_lr="auto", total_steps=60)},
            total_steps=60,
            **options,
        )


def test_holdout_split_is_a_pure_function_of_the_seed() -> None:
    from cadence.data import TensorLoader

    inputs, targets = torch.arange(100.0).reshape(100, 1), torch.arange(100)
    loader = TensorLoader(inputs, targets, 10, seed=3)
    train_a, val_a = holdout_split(loader, 0.2, seed=1)
    _train_b, val_b = holdout_split(loader, 0.2, seed=1)
    assert torch.equal(val_a.targets, val_b.targets)
    assert len(val_a.targets) == 20
    assert len(train_a.targets) == 80
    assert set(val_a.targets.tolist()).isdisjoint(train_a.targets.tolist())
    assert train_a.seed == 3
    assert train_a.batch_size == 10
    assert not val_a.shuffle
    assert not torch.equal(holdout_split(loader, 0.2, seed=2)[1].targets, val_a.targets)
    kept, held = holdout_split([(i, i) for i in range(20)], 0.1)
    assert len(held) == 2
    assert len(kept) == 18
