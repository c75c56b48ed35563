"""resolve_auto_schedules: the selection handed to "auto" schedules, recorded and reused on resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.lr_finder import find_lr, holdout_split, resolve_auto_schedules
from cadence.schedules import one_cycle
from tests.lr_finder.test_restore import Checkpoint


@dataclasses.dataclass(frozen=True)
class StandIn:
    """A schedule obeying the hand-off contract: needs_lr_finder and with_lr(max_lr)."""

    max_lr: float | str = "auto"

    @property
    def needs_lr_finder(self) -> bool:
        return self.max_lr == "auto"

    def with_lr(self, max_lr: float) -> StandIn:
        return StandIn(max_lr)

    def __call__(self, step: int) -> float:
        return float(self.max_lr)


class CountingLoss:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, outputs, targets):
        self.calls += 1
        return nn.functional.cross_entropy(outputs, targets)


SMALL_SWEEP = {"num_steps": 20, "end_lr": 1.0}


def test_auto_schedule_gets_the_race_value_and_the_run_records_it(model, optimizer, batches, tmp_path):
    checkpoint = Checkpoint(model, optimizer)
    schedules = {"lr": StandIn(), "momentum": StandIn(0.9)}
    resolved, selection = resolve_auto_schedules(
        schedules,
        model=model,
        optimizer=optimizer,
        loss_fn=CountingLoss(),
        train_data=batches,
        total_steps=40,
        run_dir=tmp_path,
        selection_options={"sweep_options": SMALL_SWEEP, "candidates": 3},
        trainer_options={"device": "cpu"},
    )
    record = json.loads((tmp_path / "lr_selection.json").read_text())
    assert record["method"] == "race"  # the default (AUTO_METHOD)
    assert resolved["lr"] == StandIn(record["value"]) == StandIn(selection.value)
    assert resolved["momentum"] is schedules["momentum"]
    assert record["resolved"] == {"lr": repr(resolved["lr"])}
    assert len(record["candidates"]) == 3
    assert {entry["lr"] for entry in record["entries"]} == set(record["candidates"])
    assert record["cost"]["race_steps"] == sum(entry["steps"] for entry in record["entries"])
    assert record["cost"]["sweep_steps"] == len(record["sweep"]["lrs"])
    checkpoint.assert_restored(model, optimizer)  # everything trained on copies of the training state


def test_resume_reuses_the_recorded_value(model, optimizer, batches, tmp_path):
    first, selection = resolve_auto_schedules(
        {"lr": StandIn()},
        model=model,
        optimizer=optimizer,
        loss_fn=nn.functional.cross_entropy,
        train_data=batches,
        total_steps=30,
        run_dir=tmp_path,
        selection_options={"method": "sweep", "sweep_options": SMALL_SWEEP},
    )
    assert selection is not None
    loss = CountingLoss()
    again, reused = resolve_auto_schedules(
        {"lr": StandIn()},
        model=model,
        optimizer=optimizer,
        loss_fn=loss,
        train_data=batches,
        total_steps=30,
        run_dir=tmp_path,
    )
    assert reused is None
    assert loss.calls == 0
    assert again == first


def test_a_record_of_the_older_finder_is_reused(model, optimizer, batches, tmp_path):
    (tmp_path / "lr_finder.json").write_text(json.dumps({"value": 0.0123, "method": "valley"}))
    loss = CountingLoss()
    resolved, _ = resolve_auto_schedules(
        {"lr": StandIn()},
        model=model,
        optimizer=optimizer,
        loss_fn=loss,
        train_data=batches,
        total_steps=30,
        run_dir=tmp_path,
    )
    assert resolved["lr"] == StandIn(0.0123)
    assert loss.calls == 0


def test_nothing_to_resolve_runs_nothing(model, optimizer, batches, tmp_path):
    loss = CountingLoss()
    schedules = {"lr": StandIn(0.1)}
    resolved, selection = resolve_auto_schedules(
        schedules,
        model=model,
        optimizer=optimizer,
        loss_fn=loss,
        train_data=batches,
        total_steps=8,
        run_dir=tmp_path,
    )
    assert resolved == schedules
    assert selection is None
    assert loss.calls == 0
    assert not (tmp_path / "lr_selection.json").exists()


@pytest.mark.parametrize("name", ["lr_selection.json", "lr_finder.json"])
def test_broken_record_is_a_config_error(name, model, optimizer, batches, tmp_path):
    (tmp_path / name).write_text("{not json")
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        resolve_auto_schedules(
            {"lr": StandIn()},
            model=model,
            optimizer=optimizer,
            loss_fn=nn.functional.cross_entropy,
            train_data=batches,
            total_steps=8,
            run_dir=tmp_path,
        )


def test_sweep_method_is_the_range_test_on_the_training_part(model, optimizer, batches, tmp_path):
    schedule = one_cycle(max_lr="auto", total_steps=100)
    resolved, selection = resolve_auto_schedules(
        {"lr": schedule},
        model=model,
        optimizer=optimizer,
        loss_fn=nn.functional.cross_entropy,
        train_data=batches,
        total_steps=100,
        selection_options={"method": "sweep", "rule": "minimum", "sweep_options": SMALL_SWEEP},
    )
    train_part, _ = holdout_split(batches, 0.1, seed=0)
    expected = find_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        train_part,
        start_lr=1e-6,
        method="minimum",
        progress=False,
        **SMALL_SWEEP,
    ).suggestion
    assert selection.value == pytest.approx(expected)
    assert resolved["lr"].max_lr == pytest.approx(expected)
    assert max(resolved["lr"](step) for step in range(100)) == pytest.approx(expected, rel=1e-3)
    assert list(tmp_path.iterdir()) == []  # no run_dir: nothing written


def test_trainer_resolves_auto_one_cycle_and_records_it(batches, tmp_path):
    from cadence.train.trainer import Trainer
    from tests.lr_finder.conftest import make_model

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        epochs=3,
        progress="off",
        run_dir=tmp_path,
        schedules={"lr": one_cycle(max_lr="auto", total_steps=3 * len(batches))},
        lr_selection={"sweep_options": SMALL_SWEEP, "candidates": 3, "budget": 2.0},
    )
    trainer.fit()
    record = json.loads((tmp_path / "lr_selection.json").read_text())
    assert trainer.schedules["lr"].max_lr == pytest.approx(record["value"])
    assert record["cost"]["run_steps"] == 3 * len(batches)
    assert json.loads((tmp_path / "meta.json").read_text())["schedules"]["lr"] == repr(
        trainer.schedules["lr"]
    )
