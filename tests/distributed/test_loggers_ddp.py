"""Loggers under two gloo ranks: only rank 0 calls them, with the same (averaged) records as metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cadence.data import TensorLoader
from cadence.tracking.run import read_metrics
from cadence.train.trainer import Trainer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


class FileLogger:
    """Appends each call to ``calls-rank<R>.jsonl``, so the test sees which process called it."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, kind: str, value: object) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps([kind, value]) + "\n")

    def log_hparams(self, params):
        self._write("hparams", dict(params))

    def log_metrics(self, metrics, step):
        self._write("metrics", dict(metrics))

    def finish(self, status):
        self._write("finish", status)


def logger_worker(rank: int, directory: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(32, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, 8, shuffle=False),
        eval_data=TensorLoader(inputs, targets, 32, shuffle=False, rank=0, world_size=1),
        epochs=1,
        run_dir=directory / "run",
        progress=False,
        log_every_n_steps=1,
        checkpoint_every_epochs=None,
        loggers=[FileLogger(directory / f"calls-rank{rank}.jsonl")],
    ).fit()


def test_only_rank_0_calls_the_loggers(ranks, tmp_path):
    ranks(logger_worker, tmp_path)
    assert not (tmp_path / "calls-rank1.jsonl").exists()
    calls = [json.loads(line) for line in (tmp_path / "calls-rank0.jsonl").read_text().splitlines()]
    assert calls[0][0] == "hparams"
    assert calls[0][1]["world_size"] == 2
    assert calls[-1] == ["finish", "completed"]
    records = [value for kind, value in calls if kind == "metrics"]
    assert records == read_metrics(tmp_path / "run")
    assert [record["kind"] for record in records] == ["train", "train", "eval"]  # 2 steps of 2 x 8
