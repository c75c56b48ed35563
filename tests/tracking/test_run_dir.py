"""RunDir: the paths of the run directory layout and its readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadence.tracking import MissingRunFileError, RunDir, write_json


def _write_run(path: Path) -> None:
    path.mkdir()
    write_json(path / "meta.json", {"status": "running", "seed": 3})
    write_json(path / "summary.json", {"status": "completed", "steps": 4})
    (path / "config.toml").write_text("[train]\nsteps = 4\n")
    records = [{"kind": "train", "step": 1, "loss": 0.5}, {"kind": "eval", "step": 1, "val_loss": 0.7}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "checkpoints").mkdir()
    for step in (2, 10):
        (path / "checkpoints" / f"step-{step:08d}.pt").write_bytes(b"")


def test_readers_return_what_was_written(tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.exists()
    assert run.is_run()
    assert run.meta() == {"status": "running", "seed": 3}
    assert run.summary() == {"status": "completed", "steps": 4}
    assert run.status == "completed"
    assert run.config() == {"train": {"steps": 4}}
    assert [r["kind"] for r in run.metrics()] == ["train", "eval"]
    assert run.metrics("eval") == [{"kind": "eval", "step": 1, "val_loss": 0.7}]
    assert [p.name for p in run.checkpoints()] == ["step-00000002.pt", "step-00000010.pt"]
    assert run.latest_checkpoint() == tmp_path / "run" / "checkpoints" / "step-00000010.pt"


def test_paths_follow_the_layout(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    assert run.path == tmp_path
    assert run.meta_path == tmp_path / "meta.json"
    assert run.metrics_path == tmp_path / "metrics.jsonl"
    assert run.lr_selection_path == tmp_path / "lr_selection.json"
    assert run.checkpoints_dir == tmp_path / "checkpoints"
    assert run.status is None
    assert not run.is_run()


def test_missing_file_names_run_and_file(tmp_path: Path) -> None:
    with pytest.raises(MissingRunFileError, match=r"has no summary\.json") as caught:
        RunDir(tmp_path).summary()
    assert str(tmp_path) in str(caught.value)
