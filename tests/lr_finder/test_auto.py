"""resolve_auto_schedules: the finder's answer handed to "auto" schedules, recorded and reused on resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.lr_finder import LRFinderResult, find_lr, resolve_auto_schedules
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


@pytest.mark.slow  # draws the plot (matplotlib's first import is slow on a busy CPU)
def test_auto_schedule_gets_the_suggestion_and_the_run_records_it(model, optimizer, batches, tmp_path):
    checkpoint = Checkpoint(model, optimizer)
    schedules = {"lr": StandIn(), "momentum": StandIn(0.9)}
    resolved = resolve_auto_schedules(
        schedules,
        model=model,
        optimizer=optimizer,
        loss_fn=CountingLoss(),
        train_data=batches,
        run_dir=tmp_path,
        finder_options={"num_steps": 20, "end_lr": 1.0},
    )
    record = json.loads((tmp_path / "lr_finder.json").read_text())
    assert resolved["lr"] == StandIn(record["value"])
    assert resolved["momentum"] is schedules["momentum"]
    assert record["method"] == "steepest"  # the hand-off's default rule (AUTO_METHOD)
    assert record["value"] == record["suggestions"]["steepest"]
    assert len(record["lrs"]) == 20
    assert record["resolved"] == {"lr": repr(resolved["lr"])}
    assert LRFinderResult.from_json(tmp_path / "lr_finder.json").suggestion == record["value"]
    if pytest.importorskip("matplotlib"):
        assert (tmp_path / "lr_finder.png").stat().st_size > 1000
    checkpoint.assert_restored(model, optimizer)  # the finder ran on a copy of the training state


def test_resume_reuses_the_recorded_value(model, optimizer, batches, tmp_path):
    (tmp_path / "lr_finder.json").write_text(json.dumps({"value": 0.0123, "method": "valley"}))
    loss = CountingLoss()
    resolved = resolve_auto_schedules(
        {"lr": StandIn()},
        model=model,
        optimizer=optimizer,
        loss_fn=loss,
        train_data=batches,
        run_dir=tmp_path,
    )
    assert resolved["lr"] == StandIn(0.0123)
    assert loss.calls == 0


def test_nothing_to_resolve_runs_nothing(model, optimizer, batches, tmp_path):
    loss = CountingLoss()
    schedules = {"lr": StandIn(0.1)}
    assert (
        resolve_auto_schedules(
            schedules, model=model, optimizer=optimizer, loss_fn=loss, train_data=batches, run_dir=tmp_path
        )
        == schedules
    )
    assert loss.calls == 0
    assert not (tmp_path / "lr_finder.json").exists()


def test_finder_options_choose_the_method_and_no_run_dir_writes_nothing(model, optimizer, batches, tmp_path):
    resolved = resolve_auto_schedules(
        {"lr": StandIn()},
        model=model,
        optimizer=optimizer,
        loss_fn=nn.functional.cross_entropy,
        train_data=batches,
        finder_options={"num_steps": 15, "method": "minimum"},
    )
    assert isinstance(resolved["lr"].max_lr, float)
    assert list(tmp_path.iterdir()) == []


def test_broken_record_is_a_config_error(model, optimizer, batches, tmp_path):
    (tmp_path / "lr_finder.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"lr_finder\.json"):
        resolve_auto_schedules(
            {"lr": StandIn()},
            model=model,
            optimizer=optimizer,
            loss_fn=nn.functional.cross_entropy,
            train_data=batches,
            run_dir=tmp_path,
        )


def test_real_one_cycle_hand_off(model, optimizer, batches):
    schedules_module = pytest.importorskip("cadence.schedules")
    schedule = schedules_module.one_cycle(max_lr="auto", total_steps=100)
    assert schedule.needs_lr_finder
    resolved = resolve_auto_schedules(
        {"lr": schedule},
        model=model,
        optimizer=optimizer,
        loss_fn=nn.functional.cross_entropy,
        train_data=batches,
        finder_options={"num_steps": 15, "end_lr": 1.0},
    )
    expected = find_lr(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        num_steps=15,
        end_lr=1.0,
        method="steepest",
        progress=False,
    ).suggestion
    assert not resolved["lr"].needs_lr_finder
    assert resolved["lr"].max_lr == pytest.approx(expected)
    assert max(resolved["lr"](step) for step in range(100)) == pytest.approx(expected, rel=1e-3)


@pytest.mark.slow  # a short Trainer run with a run directory
def test_trainer_resolves_auto_one_cycle_and_records_it(batches, tmp_path):
    trainer_module = pytest.importorskip("cadence.train.trainer")
    schedules_module = pytest.importorskip("cadence.schedules")
    from tests.lr_finder.conftest import make_model

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = trainer_module.Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        epochs=1,
        progress="off",
        run_dir=tmp_path,
        schedules={"lr": schedules_module.one_cycle(max_lr="auto", total_steps=len(batches))},
    )
    trainer.fit()
    record = json.loads((tmp_path / "lr_finder.json").read_text())
    assert trainer.schedules["lr"].max_lr == pytest.approx(record["value"])
    assert json.loads((tmp_path / "meta.json").read_text())["schedules"]["lr"] == repr(
        trainer.schedules["lr"]
    )
