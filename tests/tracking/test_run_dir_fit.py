"""A real Trainer fit with SWA, EMA and snapshots: every file of the run is where RunDir says, its readers
return what was written, and ``cadence compare`` reads the same run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from train.trainer_helpers import as_list, make_data, make_model

from cadence.callbacks.averaging import EMA, SWA
from cadence.callbacks.snapshot import SnapshotEnsemble
from cadence.cli.main import main
from cadence.schedules import snapshot_cosine
from cadence.tracking import RunDir
from cadence.tracking.records import find_run_dirs, load_run
from cadence.train.trainer import Trainer

STEPS = 12


def _fit(run_dir: Path) -> None:
    inputs, targets = make_data(samples=32)
    model = make_model()
    schedule = snapshot_cosine(0.1, total_steps=STEPS, num_snapshots=3)
    Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        as_list(inputs, targets, 8),  # 4 steps per epoch
        total_steps=STEPS,
        eval_data=as_list(inputs, targets, 16),
        schedules={"lr": schedule},
        callbacks=[SnapshotEnsemble(schedule=schedule), SWA(start=0.5), EMA(decay=0.9)],
        run_dir=run_dir,
        csv=True,
        progress=False,
    ).fit()


def test_a_fit_writes_the_layout_and_the_readers_return_it(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    _fit(run.path)

    for path in (
        run.meta_path,
        run.summary_path,
        run.metrics_path,
        run.csv_path("train"),
        run.csv_path("eval"),
        run.snapshot_index_path,
        run.swa_model_path,
        run.ema_model_path,
    ):
        assert path.is_file(), path
    assert run.is_run()
    assert run.checkpoints()
    assert run.latest_checkpoint() == run.checkpoints()[-1]

    assert run.status == "completed"
    summary = run.summary()
    assert summary["status"] == "completed"
    assert summary["steps"] == STEPS
    assert run.meta()["status"] == "completed"

    train = run.metrics("train")
    assert [record["step"] for record in train] == list(range(1, STEPS + 1))
    assert run.metrics("eval")
    assert len(run.metrics()) == len(train) + len(run.metrics("eval"))

    assert run.snapshots() == [run.snapshot_path(k) for k in (1, 2, 3)]
    index = run.snapshot_index()
    assert index["count"] == 3
    recorded = summary["extra"]["snapshot_ensemble"]["files"]
    assert recorded == [run.relative(path) for path in run.snapshots()]
    for kind, path in run.averaged_model_paths().items():
        assert summary["extra"][kind]["file"] == path.name
        assert set(torch.load(path, weights_only=True)) == set(make_model().state_dict())


def test_compare_reads_the_same_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs" / "swa" / "seed-0")
    _fit(run.path)

    assert find_run_dirs([tmp_path / "runs"]) == [run.path]
    record = load_run(run.path)
    assert record.status == run.status
    assert record.summary == run.summary()
    assert record.meta == run.meta()
    assert record.train == run.metrics("train")
    assert record.evals == run.metrics("eval")

    out = tmp_path / "report"
    assert main(["compare", "--runs", str(tmp_path / "runs"), "--out", str(out), "--no-plots"]) == 0
    (group,) = json.loads((out / "results.json").read_text())["groups"]
    (entry,) = group["runs"]
    summary = run.summary()
    assert entry["path"] == str(run.path)
    assert entry["status"] == summary["status"]
    assert entry["steps"] == summary["steps"]
    assert entry["final"]["val_accuracy"] == run.metrics("eval")[-1]["val_accuracy"]
    assert group["extra"]["snapshot_ensemble.count"]["mean"] == run.snapshot_index()["count"]
