"""Run directory writer and the TOML writer."""

from __future__ import annotations

import json
import math

import pytest

from cadence.tracking.run import RunWriter, read_metrics, update_summary_extra
from cadence.tracking.toml_writer import dumps

tomllib = pytest.importorskip("tomllib")


def test_toml_round_trip_of_nested_config():
    config = {
        "name": "one-cycle",
        "data": {"name": "mnist1d", "batch_size": 128, "subset": 0.5, "augment": False},
        "schedule": {"lr": {"name": "one_cycle", "max_lr": "auto"}, "momentum": {"values": [0.95, 0.85]}},
        "callbacks": {"swa": {}, "mixup": {"alpha": 0.2}},
        'key "quoted"': "line\nbreak\ttab \\ backslash",
    }
    assert tomllib.loads(dumps(config)) == config


def test_toml_leaves_out_none_and_rejects_objects():
    assert tomllib.loads(dumps({"a": None, "b": {"c": None, "d": 1}})) == {"b": {"d": 1}}
    assert dumps({"x": math.inf}).strip() == "x = inf"
    with pytest.raises(TypeError, match=r"'train\.model'.*object"):
        dumps({"train": {"model": object()}})


def test_metrics_are_buffered_and_truncated_on_resume(tmp_path):
    writer = RunWriter(tmp_path, flush_every=3, flush_seconds=1e9)
    writer.start({"seed": 0})
    for step in range(1, 3):
        writer.log({"kind": "train", "step": step, "loss": 1.0 / step})
    assert read_metrics(tmp_path) == []  # still buffered
    writer.log({"kind": "eval", "step": 3, "val_loss": float("nan")})
    assert [record["step"] for record in read_metrics(tmp_path)] == [1, 2, 3]
    assert read_metrics(tmp_path, kind="eval") == [{"kind": "eval", "step": 3, "val_loss": None}]
    assert writer.flush() == 3

    resumed = RunWriter(tmp_path)
    resumed.start({"seed": 0}, keep_lines=2)
    resumed.log({"kind": "train", "step": 3, "loss": 0.1})
    resumed.finish("completed", wall_time=1.5)
    assert [record["step"] for record in read_metrics(tmp_path)] == [1, 2, 3]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert (meta["status"], meta["error"], meta["wall_time"]) == ("completed", None, 1.5)
    with pytest.raises(ValueError, match="status"):
        resumed.finish("done")


def test_summary_keeps_extra_entries_added_by_callbacks(tmp_path):
    writer = RunWriter(tmp_path)
    writer.start({})
    writer.write_summary({"status": "completed", "steps": 3, "extra": {}})
    update_summary_extra(tmp_path, {"swa": {"val_accuracy": 0.9}})
    writer.write_summary({"status": "completed", "steps": 3, "wall_time": 2.0, "extra": {}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["extra"] == {"swa": {"val_accuracy": 0.9}}
    assert summary["wall_time"] == 2.0


def test_disabled_writer_writes_nothing(tmp_path):
    writer = RunWriter(tmp_path / "rank1", enabled=False)
    writer.start({"seed": 0}, {"a": 1})
    writer.log({"kind": "train", "step": 1})
    writer.finish("completed")
    assert not (tmp_path / "rank1").exists()
