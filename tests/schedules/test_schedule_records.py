"""repr is the constructing call, pickling and config round-trips, and the "auto" LR placeholder."""

from __future__ import annotations

import pickle

import pytest

from cadence.errors import ConfigError
from cadence.schedules import (
    SCHEDULES,
    constant,
    cosine,
    cosine_restarts,
    cyclic,
    cyclic_momentum,
    exponential,
    from_config,
    geometric,
    join,
    linear,
    one_cycle,
    one_cycle_momentum,
    polynomial,
    ramp_sustain_decay,
    repeat,
    schedule_keys,
    sequence,
    snapshot_cosine,
    to_config,
    truncate,
    warmup,
    warmup_cosine,
)

ALL_SCHEDULES = [
    one_cycle(0.1, 1000),
    one_cycle(0.1, 1000, three_phase=True, anneal="linear", pct_start=0.25),
    one_cycle_momentum(1000, base_momentum=0.8),
    cyclic(0.01, 0.1, 200, step_size_down=100, mode="exp_range", gamma=0.999),
    cyclic_momentum(200, mode="triangular2"),
    cosine_restarts(0.1, 100, cycle_mult=1.5, min_lr=1e-4, max_lr_decay=0.8),
    snapshot_cosine(0.2, 3000, 5),
    warmup_cosine(0.1, 1000, 50, start_lr=1e-3, min_lr=1e-5),
    ramp_sustain_decay(1e-3, 2e-3, 1e-3, 6, 0, 0.5),
    constant(0.5),
    constant(0.5, steps=10),
    linear(0.0, 1.0, 10),
    cosine(1.0, 0.0, 10),
    geometric(1e-6, 1.0, 100),
    exponential(1.0, 0.9, rate_steps=5, end=0.1),
    polynomial(1.0, 0.0, 10, power=2.0),
    join((linear(0.0, 1.0, 10), cosine(1.0, 0.0, 90)), boundaries=(10,)),
    sequence((constant(0.1, 5), linear(0.1, 0.0, 5))),
    warmup(cosine(0.1, 0.0, 90), 10),
    repeat(cosine(0.1, 0.0, 10), cycle_mult=2.0, decay=0.5),
    truncate(repeat(linear(1.0, 0.0, 4)), 10),
    one_cycle("auto", 1000),
    cyclic("auto", "auto", 100),
]


def test_repr_is_the_constructing_call() -> None:
    assert repr(one_cycle(0.1, 1000)) == (
        "one_cycle(max_lr=0.1, total_steps=1000, pct_start=0.3, div_factor=25.0, final_div_factor=10000.0, "
        "three_phase=False, anneal='cos')"
    )
    assert repr(warmup(cosine(1.0, 0.0, 90), 10)) == (
        "warmup(schedule=cosine(start=1.0, end=0.0, steps=90), warmup_steps=10, start_value=0.0)"
    )
    assert repr(join((linear(0.0, 1.0, 10), constant(1.0)), (10,))) == (
        "join(schedules=(linear(start=0.0, end=1.0, steps=10), constant(value=1.0, steps=math.inf)), "
        "boundaries=(10.0,))"
    )
    assert repr(cosine_restarts(0.1, 100)) == (
        "cosine_restarts(max_lr=0.1, cycle_steps=100, cycle_mult=1.0, min_lr=0.0, max_lr_decay=1.0)"
    )
    assert (
        repr(snapshot_cosine("auto", 300, 3))
        == "snapshot_cosine(max_lr='auto', total_steps=300, num_snapshots=3)"
    )


@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=repr)
def test_pickle_and_config_round_trip(schedule) -> None:
    restored = pickle.loads(pickle.dumps(schedule))
    assert restored == schedule
    assert repr(restored) == repr(schedule)
    config = to_config(schedule)
    assert config["name"] == schedule.call_name
    rebuilt = from_config(config)
    assert rebuilt == schedule
    assert repr(rebuilt) == repr(schedule)
    if not schedule.needs_lr_finder:
        steps = (0, 1, 7, 50, 333, 999, 5000)
        assert [rebuilt(step) for step in steps] == [schedule(step) for step in steps]


def test_config_errors_list_valid_names_and_keys() -> None:
    with pytest.raises(ConfigError, match="unknown schedule name 'one_cylce'; valid names: one_cycle, "):
        from_config({"name": "one_cylce", "max_lr": 0.1})
    with pytest.raises(ConfigError, match="valid keys: max_lr, total_steps, pct_start, div_factor"):
        from_config({"name": "one_cycle", "max_lr": 0.1, "total_steps": 100, "warmup": 3})
    with pytest.raises(ConfigError, match=r"missing key.*'total_steps'.*required keys: max_lr, total_steps"):
        from_config({"name": "one_cycle", "max_lr": 0.1})
    with pytest.raises(ConfigError, match="needs a 'name'"):
        from_config({"max_lr": 0.1})
    with pytest.raises(ConfigError, match="pct_start must be in"):
        from_config({"name": "one_cycle", "max_lr": 0.1, "total_steps": 100, "pct_start": 2})
    assert schedule_keys("snapshot_cosine") == (["max_lr", "total_steps", "num_snapshots"], [])
    assert {"one_cycle", "cyclic", "cosine_restarts", "snapshot_cosine", "warmup_cosine"} <= set(SCHEDULES)


def test_custom_scale_fn_cannot_go_into_a_config() -> None:
    custom = cyclic(0.01, 0.1, 10, scale_fn=lambda cycle: 0.5**cycle)
    with pytest.raises(ConfigError, match=r"scale_fn cannot be stored in a config.*'triangular2'"):
        to_config(custom)
    with pytest.raises(ConfigError, match="scale_fn cannot be stored in a config"):
        from_config({"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "scale_fn": "half"})
    assert to_config(cyclic(0.01, 0.1, 10, mode="triangular2"))["mode"] == "triangular2"


def test_auto_lr_placeholder() -> None:
    pending = one_cycle("auto", 1000, pct_start=0.25)
    assert pending.needs_lr_finder
    assert not one_cycle(0.1, 1000).needs_lr_finder
    with pytest.raises(ConfigError, match=r"one_cycle\(max_lr='auto'\) has no learning rate yet.*with_lr"):
        pending(0)
    assert pending.phase_boundaries(1000) == [0, 249, 999]  # the shape is known before the LR
    resolved = pending.with_lr(0.4)
    assert resolved == one_cycle(0.4, 1000, pct_start=0.25)
    assert not resolved.needs_lr_finder
    assert resolved(249) == pytest.approx(0.4)

    both = cyclic("auto", "auto", 100)
    assert both.with_lr(0.4) == cyclic(0.1, 0.4, 100)
    assert cyclic(0.01, "auto", 100).with_lr(0.4) == cyclic(0.01, 0.4, 100)
    with pytest.raises(ConfigError, match="max_lr must be 'auto' too"):
        cyclic("auto", 0.1, 100)

    for schedule in (
        cosine_restarts("auto", 100),
        snapshot_cosine("auto", 300, 3),
        warmup_cosine("auto", 300, 30, min_lr=1e-4),
    ):
        assert schedule.needs_lr_finder
        assert schedule.with_lr(0.2)(0) == pytest.approx(
            0.2 if schedule.call_name != "warmup_cosine" else 0.0
        )
    assert snapshot_cosine("auto", 300, 3).cycle_ends(300) == [99, 199, 299]
    with pytest.raises(ConfigError, match="max_lr must be > 0"):
        one_cycle("auto", 100).with_lr(-1.0)


def test_docstring_examples_run() -> None:
    import doctest

    import cadence.schedules
    from cadence.schedules import combinators, primitives, recipes

    for module in (cadence.schedules, primitives, combinators, recipes):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0, module.__name__
