"""Checkpoint files: atomic writes, weights_only loading, pruning, RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from trainer_helpers import as_list, checkpoint_dict, make_data, make_model

from cadence.train import checkpoint as checkpoints
from cadence.train.trainer import Trainer


def _payload(value: float) -> dict:
    return checkpoint_dict(weights=torch.full((3,), value))


def test_save_is_atomic_when_writing_crashes(tmp_path, monkeypatch):
    first = checkpoints.save_checkpoint(_payload(1.0), checkpoints.checkpoint_path(tmp_path, 1))
    real_save = torch.save

    def partial_then_crash(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", partial_then_crash)
    with pytest.raises(checkpoints.CheckpointError, match=r"could not write checkpoint .*disk full"):
        checkpoints.save_checkpoint(_payload(2.0), checkpoints.checkpoint_path(tmp_path, 2))
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(path.name for path in tmp_path.iterdir()) == [first.name]  # no temp file, no step 2
    assert checkpoints.latest_checkpoint(tmp_path) == first
    assert torch.equal(checkpoints.load_checkpoint(first)["weights"], torch.full((3,), 1.0))


def test_overwriting_replaces_the_whole_file(tmp_path):
    path = checkpoints.checkpoint_path(tmp_path, 5)
    checkpoints.save_checkpoint(_payload(1.0), path)
    checkpoints.save_checkpoint(_payload(3.0), path)
    assert torch.equal(checkpoints.load_checkpoint(path)["weights"], torch.full((3,), 3.0))


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "step-00000001.pt"
    torch.save({"trainer": {"step": 1}, "surprise": RunsCode(marker)}, path)
    with pytest.raises(checkpoints.CheckpointError, match="would run code"):
        checkpoints.load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    path = tmp_path / "step-00000001.pt"
    checkpoints.save_checkpoint(_payload(1.0), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(checkpoints.CheckpointError, match="unreadable or truncated"):
        checkpoints.load_checkpoint(path)
    torch.save({"weights": torch.ones(2)}, path)
    with pytest.raises(checkpoints.CheckpointError, match="not a cadence Trainer checkpoint"):
        checkpoints.load_checkpoint(path)
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint file"):
        checkpoints.load_checkpoint(tmp_path / "missing.pt")


def test_prune_keeps_the_newest(tmp_path):
    for step in (3, 10, 7, 120):
        checkpoints.save_checkpoint(_payload(float(step)), checkpoints.checkpoint_path(tmp_path, step))
    (tmp_path / ".step-00000200.pt.abc.tmp").write_bytes(b"")
    removed = checkpoints.prune_checkpoints(tmp_path, keep=2)
    assert [path.name for path in removed] == ["step-00000003.pt", "step-00000007.pt"]
    assert [path.name for path in checkpoints.list_checkpoints(tmp_path)] == [
        "step-00000010.pt",
        "step-00000120.pt",
    ]


def test_prune_removes_orphaned_shards_older_than_the_newest_checkpoint(tmp_path):
    for step in (10, 20):
        path = checkpoints.save_checkpoint(_payload(float(step)), checkpoints.checkpoint_path(tmp_path, step))
        path.with_suffix(".shards").mkdir()
    orphan = tmp_path / "step-00000015.shards"  # the run died before rank 0 wrote step 15's file
    orphan.mkdir()
    (orphan / "__0_0.distcp").write_bytes(b"x")
    in_progress = tmp_path / "step-00000030.shards"  # newer than every checkpoint: a save in progress
    in_progress.mkdir()
    removed = checkpoints.prune_checkpoints(tmp_path, keep=0)  # keep=0 keeps every checkpoint
    assert removed == []
    assert sorted(p.name for p in tmp_path.glob("*.shards")) == [
        "step-00000010.shards",
        "step-00000020.shards",
        "step-00000030.shards",
    ]
    removed = checkpoints.prune_checkpoints(tmp_path, keep=1)
    assert [p.name for p in removed] == ["step-00000010.pt"]
    remaining = sorted(p.name for p in tmp_path.glob("*.shards"))
    assert remaining == ["step-00000020.shards", "step-00000030.shards"]


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = checkpoints.capture_rng_state()
    expected = (torch.rand(3), np.random.randn(3), random.random())
    path = checkpoints.save_checkpoint(checkpoint_dict(rng=state), tmp_path / "step-00000001.pt")
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    checkpoints.restore_rng_state(checkpoints.load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.randn(3), expected[1])
    assert random.random() == expected[2]


def test_trainer_keeps_the_last_k_and_a_crash_while_saving_keeps_the_previous_one(tmp_path, monkeypatch):
    inputs, targets = make_data(samples=32)
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        as_list(inputs, targets, 8),
        epochs=2,
        run_dir=tmp_path,
        checkpoint_every_steps=1,
        keep_checkpoints=3,
        progress=False,
    )
    trainer.fit()
    names = [path.name for path in checkpoints.list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["step-00000006.pt", "step-00000007.pt", "step-00000008.pt"]

    calls = {"count": 0}
    real_save = torch.save

    def crash_on_third(obj, file, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 3:
            file.write(b"garbage")
            raise RuntimeError("killed while writing")
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crash_on_third)
    run_dir = tmp_path / "second"
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        as_list(inputs, targets, 8),
        epochs=2,
        run_dir=run_dir,
        checkpoint_every_steps=1,
        checkpoint_every_epochs=None,
        progress=False,
    )
    with pytest.raises(RuntimeError, match="killed while writing"):
        trainer.fit()
    monkeypatch.setattr(torch, "save", real_save)
    remaining = checkpoints.list_checkpoints(run_dir / "checkpoints")
    assert [path.name for path in remaining] == ["step-00000001.pt", "step-00000002.pt"]
    assert checkpoints.load_checkpoint(remaining[-1])["trainer"]["step"] == 2
    assert [path.name for path in (run_dir / "checkpoints").iterdir()] != []
    assert all(not path.name.endswith(".tmp") for path in (run_dir / "checkpoints").iterdir())
    meta = (run_dir / "meta.json").read_text()
    assert '"status": "failed"' in meta
    assert "killed while writing" in meta


def _flip_inside_tensor(path, marker: torch.Tensor, count: int = 16) -> None:
    """Flip ``count`` bytes in the middle of ``marker``'s bytes as stored in the file at ``path``."""
    raw = bytearray(path.read_bytes())
    start = bytes(raw).find(marker.numpy().tobytes())
    assert start >= 0, "the tensor's bytes are stored as they are"
    middle = start + marker.numel() * marker.element_size() // 2
    for offset in range(middle, middle + count):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_sixteen_flipped_bytes_inside_a_tensor_are_detected(tmp_path):
    weights = torch.linspace(-3.0, 5.0, 512)
    path = checkpoints.save_checkpoint(checkpoint_dict(weights=weights), tmp_path / "a.pt")
    assert torch.equal(checkpoints.load_checkpoint(path)["weights"], weights)
    _flip_inside_tensor(path, weights)
    assert not torch.equal(torch.load(path, weights_only=True)["weights"], weights)  # torch alone loads it
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"checkpoint {str(path)!r} is corrupt: its SHA-256 checksum does not match")
    assert "run code" not in message


def test_random_bytes_are_corrupt_not_code(tmp_path):
    path = tmp_path / "step-00000001.pt"
    path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"checkpoint {str(path)!r} is corrupt or not a checkpoint (")
    assert "run code" not in message
    assert "\n" not in message


def test_the_format_version_is_checked(tmp_path):
    path = checkpoints.save_checkpoint(_payload(1.0), tmp_path / "a.pt")
    assert checkpoints.load_checkpoint(path)["format"] == checkpoints.CHECKPOINT_FORMAT == 2
    torch.save({"format": 99, "trainer": {"step": 1}}, path)
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_checkpoint(path)
    assert str(error.value) == (
        f"checkpoint {str(path)!r} has format 99; this cadence reads formats 1, 2 "
        "(was it written by a newer cadence?)"
    )
    torch.save(checkpoint_dict(3, format=1), path)  # before checksums: loads, unverified
    assert checkpoints.load_checkpoint(path)["trainer"]["step"] == 3
    torch.save(checkpoint_dict(3), path)  # format 2 without its checksum
    with pytest.raises(checkpoints.CheckpointError, match="its checksum entry is missing"):
        checkpoints.load_checkpoint(path)


def _trainer(run_dir, log=None, **options):
    inputs, targets = make_data(samples=32)
    model = make_model()
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        F.cross_entropy,
        as_list(inputs, targets, 8),
        epochs=2,
        run_dir=run_dir,
        checkpoint_every_steps=2,
        checkpoint_every_epochs=None,
        keep_checkpoints=3,
        progress=False,
        log=log,
        **options,
    )


def test_a_corrupt_latest_checkpoint_is_named_and_resume_falls_back(tmp_path):
    straight = _trainer(tmp_path / "straight").fit()
    run_dir = tmp_path / "run"
    _trainer(run_dir).fit()
    found = checkpoints.list_checkpoints(run_dir / "checkpoints")
    assert [path.name for path in found] == ["step-00000004.pt", "step-00000006.pt", "step-00000008.pt"]
    latest = found[-1]
    weight = checkpoints.load_checkpoint(latest)["model"]["0.weight"]
    _flip_inside_tensor(latest, weight)
    (run_dir / "checkpoints" / "step-00000006.pt").write_bytes(b"not a checkpoint at all")
    lines: list[str] = []
    trainer = _trainer(run_dir, log=lines.append)
    state = trainer.fit(resume="latest")
    assert lines[0].startswith(f"checkpoint {str(latest)!r} is corrupt: its SHA-256 checksum does not match")
    assert lines[0].endswith("; skipping it")
    assert lines[1].startswith(f"checkpoint {str(found[1])!r} is corrupt or not a checkpoint (")
    assert lines[2] == f"resumed from step 4 (checkpoint {found[0]})"
    assert trainer.resumed_from == found[0]
    assert state.step == 8
    for a, b in zip(straight.model.parameters(), state.model.parameters()):
        assert torch.equal(a, b)


def test_resume_with_every_checkpoint_corrupt_is_an_error_naming_them(tmp_path):
    _trainer(tmp_path).fit()
    for path in checkpoints.list_checkpoints(tmp_path / "checkpoints"):
        path.write_bytes(b"\0" * 64)
    with pytest.raises(checkpoints.CheckpointError) as error:
        _trainer(tmp_path).fit(resume="latest")
    message = str(error.value)
    assert message.startswith(f"resume: no usable checkpoint in {str(tmp_path / 'checkpoints')!r}: ")
    assert message.count("is corrupt or not a checkpoint") == 3


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    real_save = torch.save
    calls = {"count": 0}

    def full_on_second(obj, file, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            file.write(b"PK\x03\x04 part")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_on_second)
    with pytest.raises(checkpoints.CheckpointError) as error:
        _trainer(tmp_path).fit()
    first = checkpoints.checkpoint_path(tmp_path / "checkpoints", 2)
    assert str(error.value) == (
        f"could not write checkpoint {str(checkpoints.checkpoint_path(tmp_path / 'checkpoints', 4))!r}: the "
        f"disk is full ([Errno {errno.ENOSPC}] No space left on device); the previous checkpoint "
        f"{str(first)!r} is intact"
    )
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == [first.name]
    assert checkpoints.load_checkpoint(first)["trainer"]["step"] == 2
