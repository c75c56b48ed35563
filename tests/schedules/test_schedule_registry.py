"""A new recipe is one class: declared ``config=True``, configs, ``to_config`` and ``--set`` know it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cadence.errors import ConfigError
from cadence.schedules import SCHEDULES, Recipe, Schedule, constant, from_config, join, linear, to_config
from cadence.schedules.base import REGISTRY, check_integer, check_lr


@pytest.fixture
def hold_then_decay():
    @dataclass(frozen=True, repr=False)
    class HoldThenDecay(Recipe, config=True):
        """``max_lr`` for ``hold_steps``, then linear to 0 over the rest of ``total_steps``."""

        call_name = "hold_then_decay"
        max_lr: float
        total_steps: int
        hold_steps: int = 0

        def validate(self) -> None:
            check_lr("max_lr", self.max_lr)
            check_integer("total_steps", self.total_steps, low=1)
            check_integer("hold_steps", self.hold_steps, low=0)

        def build(self) -> Schedule:
            decay = linear(self.max_lr, 0.0, steps=self.total_steps - self.hold_steps)
            if self.hold_steps == 0:
                return decay
            return join((constant(self.max_lr), decay), (float(self.hold_steps),))

    try:
        yield HoldThenDecay
    finally:
        del REGISTRY["hold_then_decay"]


def test_a_recipe_declared_config_true_is_known_to_configs(hold_then_decay):
    assert SCHEDULES["hold_then_decay"] is hold_then_decay
    schedule = from_config({"name": "hold_then_decay", "max_lr": 0.1, "total_steps": 100, "hold_steps": 50})
    assert [schedule(step) for step in (0, 49, 50, 75, 100)] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.0])
    assert to_config(schedule) == {
        "name": "hold_then_decay",
        "max_lr": 0.1,
        "total_steps": 100,
        "hold_steps": 50,
    }
    assert repr(schedule) == "hold_then_decay(max_lr=0.1, total_steps=100, hold_steps=50)"
    with pytest.raises(ConfigError, match="hold_steps must be an integer >= 0, got hold_steps=-1"):
        from_config({"name": "hold_then_decay", "max_lr": 0.1, "total_steps": 10, "hold_steps": -1})


def test_a_recipe_is_usable_from_a_toml_schedule_table(hold_then_decay):
    from cadence.config import schedule_configs

    config = {"schedule": {"name": "hold_then_decay", "max_lr": 0.2, "hold_steps": 4}}
    table = schedule_configs(config, steps_per_epoch=5, total_steps=10)["lr"]
    assert from_config(table)(7) == pytest.approx(0.2 * (1 - 3 / 6))


def test_two_schedules_cannot_share_a_name():
    with pytest.raises(TypeError, match="'one_cycle' is already registered"):

        class Clash(Recipe, config=True):
            call_name = "one_cycle"
