"""The Lightning and Hugging Face examples run (tiny: 30 steps) and apply cadence's schedule."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

from cadence.schedules import one_cycle

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*"),  # raised inside Lightning 2.6 itself
]


def _main(name: str):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]


def test_lightning_example(tmp_path, capsys):
    pytest.importorskip("lightning.pytorch")
    result = _main("lightning_one_cycle.py")(["--steps", "30", "--out", str(tmp_path)])
    assert result["steps"] == 30
    assert result["last_lr"] == pytest.approx(one_cycle(0.1, total_steps=30)(29), rel=1e-12)
    assert (tmp_path / "ema_model.pt").is_file()
    assert 0.0 <= result["ema_test_accuracy"] <= 1.0
    assert "30 steps: last lr" in capsys.readouterr().out


def test_hugging_face_example(tmp_path, capsys):
    os.environ["HF_HUB_OFFLINE"] = "1"
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    result = _main("hf_trainer_one_cycle.py")(["--steps", "30", "--out", str(tmp_path)])
    assert result["steps"] == 30
    assert result["last_lr"] == pytest.approx(one_cycle(0.01, total_steps=30)(29), rel=1e-12)
    assert (tmp_path / "swa_model.pt").is_file()
    assert 0.0 <= result["swa_test_accuracy"] <= 1.0
    assert "30 steps: last lr" in capsys.readouterr().out
