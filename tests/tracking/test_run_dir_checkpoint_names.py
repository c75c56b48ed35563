"""The run directory's checkpoint names belong to the run records; the loop re-exports them."""

from __future__ import annotations

from pathlib import Path

from cadence.tracking.checkpoint_files import checkpoint_path, latest_checkpoint, list_checkpoints


def test_checkpoints_are_listed_in_step_order_and_other_files_ignored(tmp_path: Path):
    for step in (120, 5, 100000000):
        checkpoint_path(tmp_path, step).write_bytes(b"")
    for other in ("step-00000007.pt.tmp", "step-7.pt", "notes.txt"):
        (tmp_path / other).write_bytes(b"")
    names = [path.name for path in list_checkpoints(tmp_path)]
    assert names == ["step-00000005.pt", "step-00000120.pt", "step-100000000.pt"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-100000000.pt"
    assert list_checkpoints(tmp_path / "missing") == []
    assert latest_checkpoint(tmp_path / "missing") is None


def test_the_loop_uses_the_same_names():
    from cadence.train import checkpoint

    assert checkpoint.list_checkpoints is list_checkpoints
    assert checkpoint.latest_checkpoint is latest_checkpoint
    assert checkpoint.checkpoint_path is checkpoint_path
