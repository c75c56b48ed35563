"""The checkpoint schema: each format's required keys and types are checked on load, with messages naming
the file, the key, the type expected and the format; the typed record round-trips a real checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from trainer_helpers import PairLoader, checkpoint_dict, make_data, make_model

from cadence.train import checkpoint as checkpoints
from cadence.train.checkpoint_schema import SCHEMAS, CheckpointRecord, TrainerRecord
from cadence.train.trainer import Trainer


def _save(path, payload):
    """Write ``payload`` with its format and checksum, as the Trainer does (so only the schema can fail)."""
    return checkpoints.save_checkpoint(payload, path)


def _error(path) -> str:
    with pytest.raises(checkpoints.CheckpointError) as error:
        checkpoints.load_checkpoint(path)
    return str(error.value)


def test_a_missing_top_level_key_is_named_with_its_type_and_format(tmp_path):
    payload = checkpoint_dict()
    del payload["rng"]
    path = _save(tmp_path / "step-00000001.pt", payload)
    assert _error(path) == f"checkpoint {str(path)!r} (format 2) lacks the key 'rng' (expected dict)"


def test_a_missing_trainer_key_is_named_by_its_path(tmp_path):
    payload = checkpoint_dict()
    del payload["trainer"]["total_steps"]
    path = _save(tmp_path / "step-00000001.pt", payload)
    assert (
        _error(path)
        == f"checkpoint {str(path)!r} (format 2) lacks the key 'trainer.total_steps' (expected int)"
    )


def test_a_missing_trainer_key_stops_a_resume_with_a_checkpoint_error_not_a_key_error(tmp_path):
    payload = checkpoint_dict()
    del payload["trainer"]["metrics_lines"]
    path = _save(tmp_path / "step-00000001.pt", payload)
    with pytest.raises(checkpoints.CheckpointError, match=r"lacks the key 'trainer\.metrics_lines'"):
        _trainer(tmp_path / "run").fit(resume=path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["trainer"].update(step="3"), "has 'trainer.step' of type str, expected int"),
        (lambda p: p["trainer"].update(step=True), "has 'trainer.step' of type bool, expected int"),
        (
            lambda p: p["trainer"].update(loss_start="x"),
            "has 'trainer.loss_start' of type str, expected float",
        ),
        (lambda p: p.update(epoch_rng=[1, 2]), "has 'epoch_rng' of type list, expected Tensor or None"),
        (
            lambda p: p.update(callbacks=[{"class": "EMA", "state": 3}]),
            "has 'callbacks[0].state' of type int",
        ),
        (lambda p: p["rng"].pop("torch"), "lacks the key 'rng.torch' (expected Tensor)"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_the_type_expected(tmp_path, change, expected):
    payload = checkpoint_dict()
    change(payload)
    path = _save(tmp_path / "step-00000001.pt", payload)
    message = _error(path)
    assert message.startswith(f"checkpoint {str(path)!r} (format 2) ")
    assert expected in message


def test_weights_must_be_full_or_sharded(tmp_path):
    payload = checkpoint_dict()
    del payload["optimizer"]
    path = _save(tmp_path / "a.pt", payload)
    assert _error(path) == f"checkpoint {str(path)!r} (format 2) lacks the key 'optimizer' (expected dict)"
    both = checkpoint_dict(sharded={"directory": "step-00000001.shards", "files": {}})
    path = _save(tmp_path / "b.pt", both)
    assert _error(path) == (
        f"checkpoint {str(path)!r} (format 2) holds both full and sharded weights "
        "('model', 'optimizer', 'sharded')"
    )
    sharded = checkpoint_dict(sharded={"directory": 7, "files": {}})
    del sharded["model"], sharded["optimizer"]
    path = _save(tmp_path / "c.pt", sharded)
    assert (
        _error(path)
        == f"checkpoint {str(path)!r} (format 2) has 'sharded.directory' of type int, expected str"
    )


@pytest.mark.parametrize("version", [99, "2", None])
def test_newer_and_unknown_formats_are_refused_by_the_record_too(tmp_path, version):
    path = tmp_path / "a.pt"
    expected = (
        f"checkpoint {str(path)!r} has format {version!r}; this cadence reads formats 1, 2 "
        "(was it written by a newer cadence?)"
    )
    torch.save(checkpoint_dict(format=version), path)
    assert _error(path) == expected
    with pytest.raises(checkpoints.CheckpointError) as error:
        CheckpointRecord.from_payload(checkpoint_dict(format=version), path)
    assert str(error.value) == expected
    assert tuple(SCHEMAS) == (1, 2)


def test_format_1_still_loads_with_defaults_for_the_keys_it_lacks(tmp_path):
    payload = checkpoint_dict(3, format=1)
    del payload["trainer"]["loss_start"], payload["trainer"]["loss_average"]
    path = tmp_path / "step-00000003.pt"
    torch.save(payload, path)  # format 1: no checksum
    record = CheckpointRecord.from_payload(checkpoints.load_checkpoint(path), path)
    assert record.format == 1
    assert record.trainer.step == 3
    assert record.trainer.total_steps == 8
    assert math.isnan(record.trainer.loss_start)
    assert math.isnan(record.trainer.loss_average)
    assert record.sharded is None
    assert set(record.model) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    # Format 1 predates sharded checkpoints: its weights are always model and optimizer.
    sharded = checkpoint_dict(3, format=1, sharded={"directory": "x", "files": {}})
    del sharded["model"], sharded["optimizer"]
    torch.save(sharded, path)
    assert (
        _error(path)
        == f"checkpoint {str(path)!r} (format 1) lacks its weights: expected 'model' and 'optimizer'"
    )


def _trainer(run_dir, **options):
    inputs, targets = make_data(samples=48)
    model = make_model(dropout=0.3, seed=11)
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        F.cross_entropy,
        PairLoader(inputs, targets, batch_size=8, seed=3),
        epochs=3,
        run_dir=run_dir,
        seed=5,
        checkpoint_every_steps=4,
        checkpoint_every_epochs=None,
        keep_checkpoints=10,
        progress=False,
        **options,
    )


def _old_way(saved: dict) -> dict:
    """The dict the Trainer wrote before the record existed, rebuilt key by key from a loaded checkpoint."""
    trainer = saved["trainer"]
    counters = ("step", "epoch", "batch_index", "skipped_steps", "wall_time", "last_loss")
    return {
        "format": saved["format"],
        "model": saved["model"],
        "optimizer": saved["optimizer"],
        "precision": saved["precision"],
        "callbacks": [{"class": entry["class"], "state": entry["state"]} for entry in saved["callbacks"]],
        "trainer": {
            **{key: trainer[key] for key in (*counters, "loss_start", "loss_average")},
            "metrics": dict(trainer["metrics"]),
            "best": dict(trainer["best"]),
            "total_steps": trainer["total_steps"],
            "world_size": trainer["world_size"],
            "metrics_lines": trainer["metrics_lines"],
            "schedules": trainer["schedules"],
        },
        "rng": saved["rng"],
        "epoch_rng": saved["epoch_rng"],
    }


@pytest.mark.parametrize("how", ["record", "old way"])
def test_a_real_checkpoint_round_trips_and_resumes_bitwise(tmp_path, how):
    straight = _trainer(tmp_path / "straight")
    straight.fit()
    source = checkpoints.checkpoint_path(tmp_path / "straight" / "checkpoints", 4)
    saved = checkpoints.load_checkpoint(source)  # mid-epoch (6 batches an epoch): epoch_rng is replayed
    record = CheckpointRecord.from_payload(saved, source)
    assert isinstance(record.trainer, TrainerRecord)
    assert record.trainer.step == 4
    assert record.trainer.batch_index == 4
    assert isinstance(record.epoch_rng, torch.Tensor)
    rebuilt = record.to_payload() if how == "record" else _old_way(saved)
    # The same keys, values and order as the file: its stored checksum covers the rebuilt dict too.
    assert checkpoints.payload_checksum(rebuilt) == saved["checksum"]["digest"]
    copy = checkpoints.save_checkpoint(rebuilt, tmp_path / "copy" / "step-00000004.pt")
    torch.manual_seed(123)
    resumed = _trainer(tmp_path / "resumed")
    state = resumed.fit(resume=copy)
    assert state.step == straight.state.step == 18
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
