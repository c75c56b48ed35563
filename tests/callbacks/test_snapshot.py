import json
from types import SimpleNamespace

import pytest
import torch
from ensembles.ensemble_helpers import CyclicStandIn, make_model, run_loop

from cadence.callbacks.snapshot import SnapshotEnsemble
from cadence.errors import ConfigError


def _params(path):
    return torch.load(path, weights_only=True)


def test_snapshot_steps_equal_the_cycle_ends(tmp_path):
    schedule = CyclicStandIn(cycle_steps=5)
    callback = SnapshotEnsemble(schedule=schedule)
    state, _ = run_loop(make_model(), [callback], total_steps=20, schedule=schedule, run_dir=tmp_path)
    assert callback.taken == schedule.cycle_ends(20) == [4, 9, 14, 19]
    files = sorted(path.name for path in (tmp_path / "snapshots").glob("snapshot-*.pt"))
    assert files == [f"snapshot-{k}.pt" for k in range(1, 5)]
    index = json.loads((tmp_path / "snapshots" / "snapshots.json").read_text())
    assert index["count"] == 4
    assert index["steps"] == [4, 9, 14, 19]
    assert callback.summary()["files"] == [f"snapshots/snapshot-{k}.pt" for k in range(1, 5)]
    # The last snapshot is the final model.
    final = _params(tmp_path / "snapshots" / "snapshot-4.pt")
    assert all(torch.equal(final[name], value) for name, value in state.model.state_dict().items())


def test_num_snapshots_keeps_the_last_ends_and_at_steps_overrides():
    schedule = CyclicStandIn(cycle_steps=5)
    assert SnapshotEnsemble(num_snapshots=2, schedule=schedule).planned_steps(20) == [14, 19]
    assert SnapshotEnsemble(at_steps=[7, 3]).planned_steps(20) == [3, 7]
    with pytest.raises(ConfigError, match="only 4"):
        SnapshotEnsemble(num_snapshots=6, schedule=schedule).planned_steps(20)
    with pytest.raises(ConfigError, match="cycle_ends"):
        SnapshotEnsemble().planned_steps(20, schedule=lambda step: 0.1)
    with pytest.raises(ConfigError, match="schedule=the_lr_schedule"):
        SnapshotEnsemble().planned_steps(20)
    with pytest.raises(ConfigError, match="beyond"):
        SnapshotEnsemble(at_steps=[25]).planned_steps(20)
    with pytest.raises(ConfigError, match="num_snapshots"):
        SnapshotEnsemble(num_snapshots=0)


def test_resume_mid_cycle_keeps_earlier_snapshots_and_takes_later_ones_at_the_same_steps(tmp_path):
    schedule = CyclicStandIn(cycle_steps=5)
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight = SnapshotEnsemble(schedule=schedule)
    run_loop(make_model(), [straight], total_steps=20, schedule=schedule, run_dir=straight_dir)

    first = SnapshotEnsemble(schedule=schedule)
    _, checkpoint = run_loop(
        make_model(), [first], total_steps=20, schedule=schedule, run_dir=resumed_dir, stop_at=12
    )
    assert first.taken == [4, 9]
    early = {k: _params(resumed_dir / "snapshots" / f"snapshot-{k}.pt") for k in (1, 2)}

    second = SnapshotEnsemble(schedule=schedule)  # a fresh process: state only from the checkpoint
    run_loop(
        make_model(seed=5),
        [second],
        total_steps=20,
        schedule=schedule,
        run_dir=resumed_dir,
        resume=checkpoint,
    )
    assert second.taken == straight.taken == [4, 9, 14, 19]
    for k in range(1, 5):
        expected = _params(straight_dir / "snapshots" / f"snapshot-{k}.pt")
        actual = _params(resumed_dir / "snapshots" / f"snapshot-{k}.pt")
        assert all(torch.equal(expected[name], actual[name]) for name in expected)
    for k, params in early.items():  # earlier files untouched
        actual = _params(resumed_dir / "snapshots" / f"snapshot-{k}.pt")
        assert all(torch.equal(params[name], actual[name]) for name in params)
    assert second.state_dict()["taken"] == [4, 9, 14, 19]


def test_schedule_from_the_state(tmp_path):
    schedule = CyclicStandIn(cycle_steps=4)
    callback = SnapshotEnsemble(num_snapshots=2)

    callback.on_fit_start(SimpleNamespace(total_steps=12, schedules={"lr": schedule}))
    assert callback.steps == [7, 11]
