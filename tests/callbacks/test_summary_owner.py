"""Callbacks report what goes under ``summary.json``'s ``extra`` on ``TrainState.summary_extra``; only the run
writer (the Trainer's, or the integrations' bridge through ``update_summary_extra``) writes the file."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cadence import distributed
from cadence.callbacks.averaging import EMA, SWA
from cadence.callbacks.snapshot import SnapshotEnsemble
from cadence.schedules import snapshot_cosine
from cadence.tracking import run as run_module
from cadence.train.callback import Callback
from cadence.train.state import TrainState
from cadence.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CALLBACKS = Path(__file__).resolve().parents[2] / "cadence" / "callbacks"


def test_no_callback_module_writes_the_summary():
    for path in sorted(CALLBACKS.rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
        }
        assert "update_summary_extra" not in names, path.name
        assert "write_summary" not in names, path.name
        strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
        assert "summary.json" not in strings, path.name


class Reporter(Callback):
    def on_fit_end(self, state: TrainState) -> None:
        state.summary_extra["reporter"] = {"steps": state.step, "note": "done"}


def _writes_of_the_summary(monkeypatch) -> list[str]:
    """The functions that wrote ``summary.json``, in order."""
    writers: list[str] = []
    write_json = run_module.write_json

    def recording(path, payload):
        if Path(path).name == "summary.json":
            writers.append(inspect.stack()[1].function)
        return write_json(path, payload)

    monkeypatch.setattr(run_module, "write_json", recording)
    return writers


def test_the_trainer_writes_what_the_callbacks_report(tmp_path, monkeypatch):
    writers = _writes_of_the_summary(monkeypatch)
    plan = distributed.lr_scaling_plan(
        0.1, per_device_batch=8, world_size=1, base_batch_size=4, warmup_steps=2
    )
    schedule = snapshot_cosine(max_lr=0.1, total_steps=12, num_snapshots=3)
    snapshots, swa, ema = SnapshotEnsemble(schedule=schedule), SWA(start=0.5), EMA(decay=0.9)
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    inputs, targets = torch.randn(24, 3), torch.randint(0, 2, (24,))
    batches = [(inputs[i : i + 4], targets[i : i + 4]) for i in range(0, 24, 4)]
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.functional.cross_entropy,
        batches,
        epochs=2,
        schedules={"lr": schedule},
        eval_data=batches[:2],
        callbacks=[snapshots, swa, ema, distributed.RecordLRScaling(plan, print_summary=False), Reporter()],
        device="cpu",
        run_dir=tmp_path,
        progress=False,
    )
    trainer.fit()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == 12
    expected = {
        "snapshot_ensemble": {
            "count": 3,
            "steps": [3, 7, 11],
            "planned_steps": [3, 7, 11],
            "files": ["snapshots/snapshot-1.pt", "snapshots/snapshot-2.pt", "snapshots/snapshot-3.pt"],
        },
        "swa": {"n_averaged": swa.num_averaged, "file": "swa_model.pt", "metrics": swa.results},
        "ema": {"n_averaged": ema.num_averaged, "file": "ema_model.pt", "metrics": ema.results},
        "lr_scaling": json.loads(json.dumps(plan.to_dict())),
        "reporter": {"steps": 12, "note": "done"},
    }
    assert summary["extra"] == expected
    assert swa.num_averaged == 6
    assert set(swa.results) == {"swa_val_loss", "swa_val_accuracy"}
    assert trainer.state is not None
    assert trainer.state.summary_extra == {key: expected[key] for key in trainer.state.summary_extra}
    assert writers == ["write_summary", "write_summary"]  # before and after on_fit_end, both the writer's


def test_the_bridge_writes_what_the_callbacks_report(tmp_path, monkeypatch):
    from cadence.integrations._bridge import Bridge

    writers = _writes_of_the_summary(monkeypatch)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    snapshots = SnapshotEnsemble(at_steps=[1, 3])
    bridge = Bridge({"lr": 0.1}, [snapshots, Reporter()], host="a test", run_dir=tmp_path)
    bridge.start(
        model, optimizer, step=0, total_steps=4, steps_per_epoch=4, device=torch.device("cpu"), run_dir=None
    )
    for step in range(1, 5):
        bridge.before_batch(step - 1, step - 1)
        bridge.after_update(step)
    bridge.end()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {
        "extra": {
            "snapshot_ensemble": {
                "count": 2,
                "steps": [1, 3],
                "planned_steps": [1, 3],
                "files": ["snapshots/snapshot-1.pt", "snapshots/snapshot-2.pt"],
            },
            "reporter": {"steps": 4, "note": "done"},
        }
    }
    assert writers == ["update_summary_extra"]
