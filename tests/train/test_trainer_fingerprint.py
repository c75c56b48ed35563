"""The Trainer records a fingerprint in meta.json; fit(resume="latest") reports a changed one (no refusal)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from trainer_helpers import as_list, make_data, make_model

from cadence.train.trainer import Trainer


def _trainer(run_dir, *, seed=0, lr=0.1, log=None):
    inputs, targets = make_data(samples=32)
    model = make_model()
    return Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
        F.cross_entropy,
        as_list(inputs, targets, 8),
        epochs=1,
        run_dir=run_dir,
        seed=seed,
        progress=False,
        log=log,
    )


def test_the_trainer_records_its_fingerprint(tmp_path):
    _trainer(tmp_path, seed=3).fit()
    fingerprint = json.loads((tmp_path / "meta.json").read_text())["fingerprint"]
    assert fingerprint["values"]["seed"] == 3
    assert fingerprint["values"]["optimizer.class"] == "SGD"
    assert fingerprint["values"]["optimizer.groups"][0]["lr"] == 0.1
    assert fingerprint["values"]["total_steps"] == 4
    _trainer(tmp_path / "again", seed=3).fit()
    again = json.loads((tmp_path / "again" / "meta.json").read_text())["fingerprint"]
    assert again["digest"] == fingerprint["digest"]


def test_resume_latest_with_changed_settings_warns_and_continues(tmp_path):
    _trainer(tmp_path).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings: no warning at all
        _trainer(tmp_path).fit(resume="latest")
    with pytest.warns(RuntimeWarning, match=r"^resuming with changed settings: optimizer.groups, seed$"):
        state = _trainer(tmp_path, seed=1, lr=0.2).fit(resume="latest")
    assert state.step == 4
    lines: list[str] = []
    _trainer(tmp_path, seed=2, lr=0.2, log=lines.append).fit(resume="latest")
    assert lines[-1] == "resuming with changed settings: seed"
    assert lines[0].startswith("resumed from step 4 (checkpoint ")
