"""Every shipped config parses and validates (building them needs the datasets, which CI does not have)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadence.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.toml"))


def test_configs_are_shipped() -> None:
    names = {path.name for path in CONFIGS}
    assert {"mnist1d_cnn_one_cycle.toml", "transfer_effnet_fine_tune.toml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_shipped_config_validates(path: Path) -> None:
    config = load_config(path, [])
    assert {"data", "model", "train"} <= set(config)


def test_transfer_configs_differ_only_in_the_unfreezing_stages() -> None:
    directory = Path(__file__).resolve().parents[2] / "configs" / "experiments"
    frozen = load_config(directory / "transfer_effnet_frozen.toml", [])
    fine_tune = load_config(directory / "transfer_effnet_fine_tune.toml", [])
    frozen_stages = frozen["callbacks"].pop("gradual_unfreezing")["stages"]
    fine_tune_stages = fine_tune["callbacks"].pop("gradual_unfreezing")["stages"]
    assert frozen == fine_tune
    assert frozen_stages == [{"at_step": 0, "groups": 1}]
    assert fine_tune_stages[-1] == {"at_epoch": 1, "groups": "all"}
