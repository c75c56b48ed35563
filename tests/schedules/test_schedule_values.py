"""Exact values at chosen steps and the properties users rely on: endpoints, joins, monotony, clamps."""

from __future__ import annotations

import itertools
import math

import pytest

from cadence.errors import ConfigError
from cadence.schedules import (
    constant,
    cosine,
    cosine_restarts,
    cyclic,
    exponential,
    geometric,
    join,
    linear,
    one_cycle,
    one_cycle_momentum,
    polynomial,
    ramp_sustain_decay,
    repeat,
    scaled_lr,
    sequence,
    snapshot_cosine,
    truncate,
    warmup,
    warmup_cosine,
)


def approx(value: float):
    return pytest.approx(value, rel=1e-12, abs=1e-15)


def test_primitives_at_round_numbers() -> None:
    assert [linear(0.0, 1.0, 10)(step) for step in (0, 5, 10, 99)] == [0.0, 0.5, 1.0, 1.0]
    assert [cosine(1.0, 0.0, 100)(step) for step in (0, 50, 100)] == [1.0, approx(0.5), 0.0]
    assert geometric(1e-4, 1.0, 4)(2) == approx(1e-2)
    assert geometric(1e-4, 1.0, 4)(40) == approx(1.0)
    assert [exponential(1.0, 0.5)(step) for step in (0, 1, 3)] == [1.0, 0.5, 0.125]
    assert exponential(3.0, 0.5, rate_steps=10, end=1.0)(20) == approx(1.5)
    assert polynomial(1.0, 0.0, 10, power=2.0)(5) == approx(0.25)
    assert constant(0.3)(10**9) == 0.3


def test_one_cycle_round_numbers_for_both_shapes() -> None:
    for anneal in ("cos", "linear"):
        schedule = one_cycle(1.0, 100, div_factor=10.0, final_div_factor=10.0, anneal=anneal)
        assert schedule(0) == approx(0.1)
        assert schedule(29) == approx(1.0)  # peak at pct_start * total_steps - 1, as torch
        assert schedule(64) == approx(0.505)  # halfway through the second phase
        assert schedule(99) == approx(0.01)
        assert schedule(10**6) == approx(0.01)
    three = one_cycle(1.0, 100, div_factor=10.0, final_div_factor=10.0, three_phase=True, anneal="linear")
    assert [three(step) for step in (0, 29, 58, 99)] == [approx(0.1), approx(1.0), approx(0.1), approx(0.01)]
    momentum = one_cycle_momentum(100)
    assert [momentum(step) for step in (0, 29, 99)] == [approx(0.95), approx(0.85), approx(0.95)]


def test_cyclic_round_numbers() -> None:
    schedule = cyclic(0.1, 0.5, 4, mode="triangular2")
    assert [schedule(step) for step in range(10)] == [
        approx(value) for value in (0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2, 0.1, 0.15)
    ]
    assert schedule(12) == approx(0.3)  # cycle 2 peaks at half the amplitude
    assert cyclic(0.1, 0.5, 4).cycle_ends(25) == [7, 15, 23]
    asymmetric = cyclic(0.0, 1.0, 2, step_size_down=8)
    assert [asymmetric(step) for step in (1, 2, 6, 10)] == [0.5, 1.0, 0.5, 0.0]


def test_cosine_restarts_round_numbers_float_mult_and_decay() -> None:
    schedule = cosine_restarts(1.0, 10, cycle_mult=2)
    assert [schedule(step) for step in (0, 5, 10, 20, 30)] == [1.0, approx(0.5), 1.0, approx(0.5), 1.0]
    assert schedule.cycle_ends(100) == [9, 29, 69]
    # float cycle_mult: lengths 10, 15, round(22.5) = 23, round(33.75) = 34 (halves round up)
    floating = cosine_restarts(1.0, 10, cycle_mult=1.5)
    assert floating.cycle_ends(100) == [9, 24, 47, 81]
    assert floating(25) == 1.0
    assert floating(48) == 1.0
    assert floating(25 + 23 / 2) == approx(0.5)
    decayed = cosine_restarts(1.0, 10, min_lr=0.2, max_lr_decay=0.5)
    assert [decayed(step) for step in (0, 10, 20, 25)] == [1.0, approx(0.6), approx(0.4), approx(0.3)]
    assert decayed(9) > 0.2
    assert decayed(19) > 0.2


def test_snapshot_cosine_formula_and_cycle_ends() -> None:
    schedule = snapshot_cosine(0.2, 300, 3)
    for step in range(0, 300, 7):
        cycle = math.ceil(300 / 3)
        expected = 0.2 / 2 * (math.cos(math.pi * (step % cycle) / cycle) + 1)
        assert schedule(step) == approx(expected)
    assert [schedule(step) for step in (0, 50, 100, 150)] == [0.2, approx(0.1), 0.2, approx(0.1)]
    assert schedule.cycle_ends(300) == [99, 199, 299]
    assert schedule.cycle_ends(250) == [99, 199]
    assert schedule(5000) == schedule(299)
    uneven = snapshot_cosine(0.1, 1000, 3)  # c = 334: the last cycle is cut at the end of training
    assert uneven.cycle_ends(1000) == [333, 667, 999]


def test_ramp_sustain_decay_reproduces_the_24_epoch_curve() -> None:
    start_lr = min_lr = 1e-3
    max_lr, ramp, sustain, decay = 2e-3, 6, 0, 0.5

    def reference(epoch: int) -> float:  # the talk's Keras LearningRateScheduler function
        if epoch < ramp:
            return (max_lr - start_lr) / ramp * epoch + start_lr
        if epoch < ramp + sustain:
            return max_lr
        return (max_lr - min_lr) * decay ** (epoch - ramp - sustain) + min_lr

    schedule = ramp_sustain_decay(start_lr, max_lr, min_lr, ramp, sustain, decay)
    assert [schedule(epoch) for epoch in range(24)] == [approx(reference(epoch)) for epoch in range(24)]
    assert schedule(3) == approx(1.5e-3)
    assert schedule(6) == approx(2e-3)
    assert schedule(8) == approx(1.25e-3)
    with_plateau = ramp_sustain_decay(0.0, 1.0, 0.0, 2, 3, 0.5, decay_steps=2)
    assert [with_plateau(step) for step in (1, 2, 4, 5, 7, 9)] == [0.5, 1.0, 1.0, 1.0, 0.5, 0.25]


def test_warmup_cosine_and_scaled_lr() -> None:
    schedule = warmup_cosine(1.0, 110, 10)
    assert [schedule(step) for step in (0, 5, 10, 60, 110, 500)] == [0.0, 0.5, 1.0, approx(0.5), 0.0, 0.0]
    assert warmup_cosine(1.0, 100, 0, min_lr=0.1)(50) == approx(0.55)
    assert warmup_cosine(1.0, 100, 10, start_lr=0.5)(5) == approx(0.75)
    assert scaled_lr(0.1, 1024) == approx(0.4)
    assert scaled_lr(0.1, 1024, rule="sqrt") == approx(0.2)
    assert scaled_lr(0.1, 64, base_batch_size=128) == approx(0.05)
    assert isinstance(scaled_lr(1.0, 256), float)


def test_combinators_use_local_time() -> None:
    joined = join((linear(0.0, 1.0, 10), cosine(1.0, 0.0, 20)), boundaries=(10,))
    assert [joined(step) for step in (5, 10, 20, 30, 99)] == [0.5, 1.0, approx(0.5), 0.0, 0.0]
    assert sequence((linear(0.0, 1.0, 10), cosine(1.0, 0.0, 20))) == sequence(
        (linear(0.0, 1.0, 10), cosine(1.0, 0.0, 20))
    )
    assert [sequence((constant(2.0, 3), linear(2.0, 0.0, 2)))(step) for step in (2, 3, 4, 5)] == [
        2.0,
        2.0,
        1.0,
        0.0,
    ]
    wave = repeat(linear(1.0, 0.0, 4), decay=0.5)
    assert [wave(step) for step in (0, 2, 4, 6, 8)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    assert wave.cycle_ends(13) == [3, 7, 11]
    held = truncate(linear(0.0, 1.0, 10), 4)
    assert held(3) == 0.3
    assert held(40) == approx(0.4)
    warmed = warmup(constant(0.8), 4, start_value=0.4)
    assert [warmed(step) for step in (0, 2, 4, 100)] == [0.4, approx(0.6), 0.8, 0.8]


RECIPES = [
    one_cycle(0.1, 1000),
    one_cycle(0.1, 1000, three_phase=True, anneal="linear"),
    one_cycle_momentum(1000),
    warmup_cosine(0.1, 1000, 100, min_lr=1e-3),
    ramp_sustain_decay(1e-3, 2e-3, 1e-3, 6, 3, 0.5),
]


@pytest.mark.parametrize("schedule", RECIPES, ids=repr)
def test_joins_are_continuous_and_phases_monotone(schedule) -> None:
    values = [schedule(step) for step in range(1000)]
    spread = max(values) - min(values)
    joins = [point for point in schedule.breakpoints(999) if point > 0]
    assert joins
    for point in joins:  # the value just before a join equals the value at it (local time is continuous)
        assert abs(schedule.at(point - 1e-7) - schedule.at(point)) < 1e-6 * spread, point
    boundaries = schedule.phase_boundaries(1000)
    for start, end in itertools.pairwise(boundaries):
        phase = values[start : end + 1]
        rising = all(later >= earlier for earlier, later in itertools.pairwise(phase))
        falling = all(later <= earlier for earlier, later in itertools.pairwise(phase))
        assert rising or falling, (start, end)


@pytest.mark.parametrize(
    "schedule",
    [
        *RECIPES,
        cyclic(0.01, 0.1, 50),
        cosine_restarts(0.1, 50, cycle_mult=1.5, max_lr_decay=0.7),
        snapshot_cosine(0.1, 600, 5),
        geometric(1e-6, 1.0, 200),
    ],
    ids=repr,
)
def test_steps_clamp_and_negative_steps_raise(schedule) -> None:
    if math.isfinite(schedule.duration):
        end = math.ceil(schedule.duration)
        assert schedule(end + 1) == schedule(end) == schedule(10**9)
    assert math.isfinite(schedule(10**7))
    with pytest.raises(ValueError, match="step must be >= 0"):
        schedule(-1)


def test_one_cycle_endpoints_follow_div_factors() -> None:
    schedule = one_cycle(0.5, 200, div_factor=5.0, final_div_factor=100.0)
    assert schedule(0) == approx(0.1)
    assert max(schedule(step) for step in range(200)) == approx(0.5)
    assert schedule(199) == approx(0.001)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: one_cycle(0.1, 1000, pct_start=1.5), "pct_start must be in (0, 1), got pct_start=1.5"),
        (lambda: one_cycle(-0.1, 1000), "max_lr must be > 0, got max_lr=-0.1"),
        (lambda: one_cycle(0.1, 1000.5), "total_steps must be an integer >= 2"),
        (lambda: one_cycle(0.1, 10, pct_start=0.05), "pct_start * total_steps must be > 1"),
        (lambda: one_cycle(0.1, 100, pct_start=0.6, three_phase=True), "third phase is not empty"),
        (lambda: one_cycle(0.1, 100, anneal="cosine"), "anneal must be one of 'cos', 'linear'"),
        (lambda: one_cycle("fast", 100), 'max_lr must be a number or "auto"'),
        (lambda: cyclic(0.2, 0.1, 10), "base_lr must be <= max_lr"),
        (
            lambda: cyclic(0.01, 0.1, 10, mode="sine"),
            "mode must be one of 'triangular', 'triangular2', 'exp_range'",
        ),
        (lambda: cyclic(0.01, 0.1, 0), "step_size_up must be an integer >= 1"),
        (
            lambda: cyclic(0.01, 0.1, 10, scale_mode="epoch"),
            "scale_mode must be one of 'cycle', 'iterations'",
        ),
        (lambda: cosine_restarts(0.1, 10, cycle_mult=0.5), "cycle_mult must be >= 1"),
        (lambda: cosine_restarts(0.1, 10, max_lr_decay=1.5), "max_lr_decay must be in (0, 1]"),
        (lambda: snapshot_cosine(0.1, 10, 20), "num_snapshots must be <= total_steps"),
        (lambda: warmup_cosine(0.1, 100, 100), "warmup_steps must be < total_steps"),
        (lambda: ramp_sustain_decay(0.0, 1.0, 2.0, 1, 1, 0.5), "min_lr must be <= max_lr"),
        (lambda: scaled_lr(0.1, 512, rule="cube"), "rule must be one of 'linear', 'sqrt'"),
        (lambda: linear(0.0, 1.0, 0), "steps must be > 0, got steps=0"),
        (lambda: join((linear(0.0, 1.0, 5),), boundaries=(3,)), "boundaries must hold one value fewer"),
        (
            lambda: sequence((constant(1.0), linear(1.0, 0.0, 5))),
            "only the last of schedules may last forever",
        ),
        (lambda: repeat(constant(1.0)), "finite, positive duration"),
    ],
)
def test_arguments_are_validated_at_construction(build, message: str) -> None:
    with pytest.raises(ValueError) as error:
        build()
    assert isinstance(error.value, ConfigError)
    assert message in str(error.value)
