"""LR scaling plans: global batch, factor, scaled values and warmup are exact."""

from __future__ import annotations

import math
import pickle

import pytest

from cadence.distributed import ScaledSchedule, derive_warmup_steps, lr_scaling_plan, warms_up
from cadence.errors import ConfigError
from cadence.schedules import constant, cosine, cosine_restarts, one_cycle, to_config, warmup, warmup_cosine


@pytest.mark.parametrize(
    ("rule", "factor"),
    [("linear", 4.0), ("sqrt", 2.0), ("none", 1.0)],
)
def test_global_batch_and_factor(rule, factor):
    plan = lr_scaling_plan(
        0.1, per_device_batch=128, world_size=4, accumulation_steps=2, rule=rule, warmup_steps=0
    )
    assert plan.global_batch == 128 * 4 * 2 == 1024
    assert plan.factor == factor
    assert plan.base_values == {"lr": 0.1}
    assert plan.scaled_values == {"lr": pytest.approx(0.1 * factor, rel=1e-15)}


def test_goyal_imagenet_numbers():
    # ResNet-50: 0.1 per 256 images, 8192 images over 256 GPUs of 32 -> 3.2, warmup 5 epochs (of 90)
    steps_per_epoch = 1_281_167 // 8192
    plan = lr_scaling_plan(
        0.1, 32, 256, rule="linear", steps_per_epoch=steps_per_epoch, total_steps=90 * steps_per_epoch
    )
    assert plan.global_batch == 8192
    assert plan.scaled_values["lr"] == pytest.approx(3.2)
    assert plan.warmup_steps == 5 * steps_per_epoch
    assert plan.warmup_source == "derived"


def test_sqrt_rule_with_a_non_square_ratio():
    plan = lr_scaling_plan(0.001, 64, 2, 1, rule="sqrt", base_batch_size=64, warmup_steps=0)
    assert plan.factor == pytest.approx(math.sqrt(2))
    assert plan.scaled_values["lr"] == pytest.approx(0.001 * math.sqrt(2))


def test_derived_warmup_is_five_epochs_capped_at_ten_percent():
    assert derive_warmup_steps(4.0, steps_per_epoch=100, total_steps=10_000) == 500
    assert derive_warmup_steps(4.0, steps_per_epoch=100, total_steps=3000) == 300
    assert derive_warmup_steps(4.0, steps_per_epoch=None, total_steps=3000) == 300
    assert derive_warmup_steps(4.0, steps_per_epoch=7, total_steps=None) == 35
    assert derive_warmup_steps(1.0, steps_per_epoch=100, total_steps=3000) == 0
    assert derive_warmup_steps(0.5, steps_per_epoch=100, total_steps=3000) == 0
    with pytest.raises(ConfigError, match="warmup_steps"):
        derive_warmup_steps(2.0, steps_per_epoch=None, total_steps=None)


def test_given_warmup_steps_and_epochs():
    plan = lr_scaling_plan(0.1, 256, 2, warmup_steps=7)
    assert (plan.warmup_steps, plan.warmup_source) == (7, "given")
    plan = lr_scaling_plan(0.1, 256, 2, warmup_epochs=1.5, steps_per_epoch=10)
    assert (plan.warmup_steps, plan.warmup_source) == (15, "given")
    plan = lr_scaling_plan(0.1, 256, 2, warmup_steps=0)
    assert (plan.warmup_steps, plan.warmup_source) == (0, "none")
    # no scaling and no warmup asked for: nothing to derive
    plan = lr_scaling_plan(0.1, 256, 2, rule="none")
    assert (plan.factor, plan.warmup_steps) == (1.0, 0)


def test_which_schedules_warm_up_themselves():
    assert warms_up(one_cycle(0.1, total_steps=100))
    assert warms_up(warmup_cosine(0.1, total_steps=100, warmup_steps=10))
    assert warms_up(warmup(constant(0.1), 10))
    assert not warms_up(warmup_cosine(0.1, total_steps=100, warmup_steps=0))  # a plain cosine
    assert not warms_up(constant(0.1))
    assert not warms_up(cosine(0.1, 0.0, 100))
    assert not warms_up(cosine_restarts(0.1, cycle_steps=100))


def test_no_warmup_is_derived_over_a_schedule_that_warms_up_itself():
    # one-cycle already rises from max_lr / 25 over its first 25 %: a second ramp would warm twice
    base = one_cycle(0.1, total_steps=600, pct_start=0.25)
    plan = lr_scaling_plan(to_config(base), 100, 2, base_batch_size=100, steps_per_epoch=20, total_steps=600)
    assert (plan.rule, plan.factor, plan.warmup_steps, plan.warmup_source) == ("linear", 2.0, 0, "schedule")
    assert plan.summary() == (
        "lr scaling: linear, global batch 200 = 100 per device × 2 processes × 1 accumulation step; "
        "factor 2 (base batch 100); max_lr 0.1 -> 0.2; no added warmup (the schedule warms up itself)"
    )
    scaled = plan.apply(base)
    for step in (0, 30, 150, 599):
        assert scaled(step) == pytest.approx(2.0 * base(step), rel=1e-12)
    # a warmup that is asked for is still laid over it
    plan = lr_scaling_plan(to_config(base), 100, 2, base_batch_size=100, warmup_steps=60, total_steps=600)
    assert (plan.warmup_steps, plan.warmup_source) == (60, "given")
    # a schedule that starts at its peak still gets the derived warmup
    plan = lr_scaling_plan(to_config(cosine(0.1, 0.0, 600)), 100, 2, base_batch_size=100, total_steps=600)
    assert (plan.warmup_steps, plan.warmup_source) == (60, "derived")


def test_applied_schedule_warms_up_from_the_unscaled_lr():
    plan = lr_scaling_plan(0.1, 128, 4, 2, steps_per_epoch=100, total_steps=3000)
    schedule = plan.apply(0.1)
    assert isinstance(schedule, ScaledSchedule)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(150) == pytest.approx(0.25)
    assert schedule(300) == pytest.approx(0.4)
    assert schedule(2999) == pytest.approx(0.4)


def test_applied_schedule_keeps_the_schedules_clock():
    base = one_cycle(0.1, total_steps=1000)
    plan = lr_scaling_plan(to_config(base), 64, 8, warmup_steps=100)
    assert plan.base_values == {"max_lr": 0.1}
    assert plan.scaled_values == {"max_lr": pytest.approx(0.2)}
    scaled = plan.apply(to_config(base))
    for step in (100, 299, 500, 999, 1500):  # after warmup: exactly factor × the original, same clock
        assert scaled(step) == pytest.approx(2.0 * base(step), rel=1e-12)
    assert scaled(50) == pytest.approx(1.5 * base(50), rel=1e-12)
    assert scaled.phase_boundaries(1000) == sorted({*base.phase_boundaries(1000), 100})
    assert plan.apply(base) == scaled  # a schedule object gives the same result as its config


def test_cycle_ends_of_a_scaled_cyclic_schedule():
    base = cosine_restarts(0.1, cycle_steps=100)
    scaled = lr_scaling_plan(base, 64, 8, warmup_steps=10).apply(base)
    assert scaled.cycle_ends(300) == base.cycle_ends(300)
    with pytest.raises(ConfigError, match="no cycle ends"):
        lr_scaling_plan(0.1, 64, 8, warmup_steps=10).apply(0.1).cycle_ends(300)


def test_auto_lr_is_not_scaled():
    config = {"name": "one_cycle", "max_lr": "auto", "total_steps": 100}
    plan = lr_scaling_plan(config, 128, 8, total_steps=100)
    assert plan.auto_lr
    assert plan.warmup_steps == 0
    assert "LR finder" in plan.summary()
    assert plan.apply(config).needs_lr_finder


def test_summary_and_record():
    plan = lr_scaling_plan(0.1, 128, 4, 2, steps_per_epoch=100, total_steps=3000)
    assert plan.summary() == (
        "lr scaling: linear, global batch 1024 = 128 per device × 4 processes × 2 accumulation steps; "
        "factor 4 (base batch 256); lr 0.1 -> 0.4; warmup 300 steps (derived)"
    )
    record = plan.to_dict()
    assert record["global_batch"] == 1024
    assert record["factor"] == 4.0
    assert record["scaled_values"] == {"lr": pytest.approx(0.4)}
    assert record["summary"] == plan.summary()


def test_scaled_schedule_pickles_and_prints():
    schedule = ScaledSchedule(constant(0.1), factor=4.0, warmup_steps=10)
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert repr(schedule).startswith("scaled(schedule=constant(value=0.1")
    assert [round(schedule(step), 6) for step in (0, 5, 10, 20)] == [0.1, 0.25, 0.4, 0.4]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rule": "cubic"}, "lr_scaling='cubic'.*'linear', 'sqrt', 'none'"),
        ({"per_device_batch": 0}, "batch_size=0"),
        ({"world_size": 0}, "world_size=0"),
        ({"accumulation_steps": 1.5}, "accumulation_steps=1.5"),
        ({"base_batch_size": -1}, "base_batch_size=-1"),
        ({"warmup_steps": -1}, "warmup_steps=-1"),
        ({"warmup_steps": 1, "warmup_epochs": 1}, "not both"),
        ({"warmup_epochs": 1}, "steps per epoch"),
        ({"base_lr_or_schedule_config": "fast"}, "expected a learning rate"),
        ({"base_lr_or_schedule_config": 0.0}, "lr=0.0"),
    ],
)
def test_bad_input_names_the_field(arguments, message):
    call = {"base_lr_or_schedule_config": 0.1, "per_device_batch": 32, "world_size": 2, **arguments}
    with pytest.raises(ConfigError, match=message):
        lr_scaling_plan(**call)
