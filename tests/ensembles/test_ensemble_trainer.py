"""Snapshot ensembles, SWA and EMA inside the real Trainer with the real cyclic schedules."""

import json

import pytest
import torch
from torch import nn

from cadence.callbacks.averaging import EMA, SWA
from cadence.callbacks.snapshot import SnapshotEnsemble
from cadence.data import TensorLoader
from cadence.ensembles import Ensemble, evaluate_ensemble
from cadence.schedules import cosine_restarts, snapshot_cosine

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _loaders():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(60, 1, 12, generator=generator)
    targets = (inputs[:, 0, 0] > 0).long() + (inputs[:, 0, 1] > 0).long()
    return TensorLoader(inputs, targets, 10, seed=2), TensorLoader(inputs, targets, 30, shuffle=False)


def _fit(run_dir, callbacks, schedule, *, resume=None, total_steps=24):
    from cadence.train.trainer import Trainer

    model = _model()
    train, evaluation = _loaders()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        nn.functional.cross_entropy,
        train,
        total_steps=total_steps,
        schedules={"lr": schedule},
        eval_data=evaluation,
        callbacks=callbacks,
        run_dir=run_dir,
        checkpoint_every_steps=5,
        keep_checkpoints=10,
        progress=False,
        device="cpu",
    )
    return trainer.fit(resume=resume), model


@pytest.mark.parametrize(
    "schedule",
    [
        snapshot_cosine(max_lr=0.1, total_steps=24, num_snapshots=4),
        cosine_restarts(max_lr=0.1, cycle_steps=7),
    ],
)
def test_snapshot_steps_equal_the_schedule_cycle_ends(tmp_path, schedule):
    callback = SnapshotEnsemble(schedule=schedule)
    _fit(tmp_path, [callback], schedule)
    assert callback.taken == schedule.cycle_ends(24)
    assert len(callback.taken) >= 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["extra"]["snapshot_ensemble"]["steps"] == callback.taken
    files = sorted((tmp_path / "snapshots").glob("snapshot-*.pt"))
    assert len(files) == len(callback.taken)
    ensemble = Ensemble(files, model_factory=_model)
    report = evaluate_ensemble(ensemble, _loaders()[1], metrics=("accuracy",))
    assert len(report.members) == len(files)


def test_snapshot_resume_mid_cycle_in_the_trainer(tmp_path):
    schedule = snapshot_cosine(max_lr=0.1, total_steps=24, num_snapshots=4)  # ends 5, 11, 17, 23
    straight = SnapshotEnsemble(schedule=schedule)
    _fit(tmp_path / "straight", [straight], schedule)
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    (resumed_dir / "snapshots").mkdir()
    # The run got as far as step 15 (mid-cycle), with snapshots 1 and 2 already written.
    for name in ("checkpoints/step-00000015.pt", "snapshots/snapshot-1.pt", "snapshots/snapshot-2.pt"):
        (resumed_dir / name).write_bytes((tmp_path / "straight" / name).read_bytes())
    before = (resumed_dir / "snapshots" / "snapshot-1.pt").stat().st_mtime_ns
    resumed = SnapshotEnsemble(schedule=schedule)
    _fit(resumed_dir, [resumed], schedule, resume="latest")
    assert resumed.taken == straight.taken == [5, 11, 17, 23]
    assert (resumed_dir / "snapshots" / "snapshot-1.pt").stat().st_mtime_ns == before
    for k in range(1, 5):
        expected = torch.load(tmp_path / "straight" / "snapshots" / f"snapshot-{k}.pt", weights_only=True)
        actual = torch.load(resumed_dir / "snapshots" / f"snapshot-{k}.pt", weights_only=True)
        assert all(torch.equal(expected[name], actual[name]) for name in expected)


@pytest.mark.parametrize("make", [lambda: SWA(start=0.5), lambda: EMA(decay=0.9)])
def test_averaging_in_the_trainer_resumes_exactly_and_reports(tmp_path, make):
    schedule = 0.05
    straight = make()
    state, _ = _fit(tmp_path / "straight", [straight], schedule)
    prefix = straight.prefix
    assert f"{prefix}val_accuracy" in state.metrics
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["extra"][prefix.rstrip("_")]["n_averaged"] == straight.num_averaged
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    name = "checkpoints/step-00000015.pt"
    (resumed_dir / name).write_bytes((tmp_path / "straight" / name).read_bytes())
    resumed = make()
    _fit(resumed_dir, [resumed], schedule, resume="latest")
    assert resumed.num_averaged == straight.num_averaged
    expected = torch.load(tmp_path / "straight" / straight.filename, weights_only=True)
    actual = torch.load(resumed_dir / straight.filename, weights_only=True)
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
