"""Under DDP on two gloo ranks the Trainer reads and reduces the loss once per log interval, not per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed_helpers import load_results, save_result
from torch import nn

from cadence.data import TensorLoader
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

READ_METHODS = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy")
EVERY = 3
STEPS = 8


class Count(Callback):
    """Host reads and ``dist.all_reduce`` calls per step, and each step's local loss (kept on the device)."""

    def __init__(self) -> None:
        self.reads = self.reduces = 0
        self.per_step: dict[int, tuple[int, int]] = {}
        self.local_losses: list[torch.Tensor] = []
        self._start = (0, 0)

    def on_batch_start(self, state) -> None:
        self._start = (self.reads, self.reduces)

    def on_after_backward(self, state) -> None:
        self.local_losses.append(state.loss.detach().clone())

    def on_step_end(self, state) -> None:
        self.per_step[state.step] = (self.reads - self._start[0], self.reduces - self._start[1])


def worker(rank: int, directory: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    counter = Count()
    trainer = Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, 8, seed=2),  # 4 steps per epoch on each of the 2 ranks
        total_steps=STEPS,
        callbacks=[counter],
        progress=False,
        log_every_n_steps=EVERY,
        run_dir=directory / "run",
        checkpoint_every_epochs=None,
        label_smoothing=0.1,
        num_classes=2,
    )
    originals = {name: getattr(torch.Tensor, name) for name in READ_METHODS}
    all_reduce = dist.all_reduce

    def counting_read(original):
        def method(tensor, *args, **kwargs):
            counter.reads += 1
            return original(tensor, *args, **kwargs)

        return method

    def counting_all_reduce(*args, **kwargs):
        counter.reduces += 1
        return all_reduce(*args, **kwargs)

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, counting_read(original))
        dist.all_reduce = counting_all_reduce
        trainer.fit()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        dist.all_reduce = all_reduce
    save_result(directory, rank, {"per_step": counter.per_step, "losses": torch.stack(counter.local_losses)})


def test_one_read_and_one_all_reduce_per_log_interval(ranks, tmp_path):
    ranks(worker, tmp_path)
    results = load_results(tmp_path)
    expected = {step: (int(step % EVERY == 0 or step == STEPS),) * 2 for step in range(1, STEPS + 1)}
    for result in results:
        assert result["per_step"] == expected
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [line["loss"] for line in lines if line["kind"] == "train"]
    mean = ((results[0]["losses"].double() + results[1]["losses"].double()) / 2).tolist()
    assert logged == pytest.approx(mean, rel=1e-6)  # every step logged, as the mean over the ranks
    assert len(logged) == STEPS
