"""Exact resume: a run interrupted at a checkpoint and resumed ends bitwise identical to a straight run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from trainer_helpers import PairLoader, make_data, make_model

from cadence.callbacks.early_stopping import EarlyStopping
from cadence.train import checkpoint as checkpoints
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

HERE = Path(__file__).parent


class GradientNoise(Callback):
    """A callback with state that changes training: noise from its own generator, a running count."""

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(7)
        self.count = 0

    def on_after_backward(self, state):
        self.count += 1
        for parameter in state.model.parameters():
            parameter.grad.add_(torch.randn(parameter.shape, generator=self.generator) * 1e-3)

    def state_dict(self):
        return {"generator": self.generator.get_state(), "count": self.count}

    def load_state_dict(self, state_dict):
        self.generator.set_state(state_dict["generator"])
        self.count = state_dict["count"]


def build(run_dir, loader_kind: str, **options):
    inputs, targets = make_data(samples=48)
    if loader_kind == "pairs":
        data = PairLoader(inputs, targets, batch_size=8, seed=3)
    else:
        data = DataLoader(TensorDataset(inputs, targets), batch_size=8, shuffle=True)
    model = make_model(dropout=0.3, seed=11)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    callbacks = [GradientNoise(), EarlyStopping(patience=100)]
    options.setdefault("epochs", 3)
    trainer = Trainer(
        model,
        optimizer,
        F.cross_entropy,
        data,
        eval_data=[(inputs, targets)],
        schedules={"lr": lambda step: 0.05 + 0.01 * (step % 5)},
        callbacks=callbacks,
        run_dir=run_dir,
        seed=5,
        progress=False,
        **options,
    )
    return trainer, model, callbacks


def train_records(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


@pytest.mark.parametrize("loader_kind", ["pairs", "dataloader"])
@pytest.mark.parametrize("resume_step", [4, 6])  # mid-epoch and at an epoch boundary
def test_resume_from_a_checkpoint_with_fresh_objects_is_exact(tmp_path, loader_kind, resume_step):
    straight, straight_model, straight_callbacks = build(
        tmp_path / "straight",
        loader_kind,
        checkpoint_every_steps=2,
        keep_checkpoints=20,
        accumulation_steps=1,
    )
    straight.fit()
    saved = checkpoints.checkpoint_path(tmp_path / "straight" / "checkpoints", resume_step)
    assert saved.exists()

    # A different seed and fresh objects: everything must come from the checkpoint.
    torch.manual_seed(123)
    resumed, resumed_model, resumed_callbacks = build(
        tmp_path / "resumed", loader_kind, checkpoint_every_steps=2, keep_checkpoints=20
    )
    state = resumed.fit(resume=saved)
    assert state.step == straight.state.step == 18
    for name, value in straight_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[name]), name
    assert resumed_callbacks[0].count == straight_callbacks[0].count
    assert resumed_callbacks[1].best == straight_callbacks[1].best
    straight_after = [r for r in train_records(tmp_path / "straight") if r["step"] > resume_step]
    assert train_records(tmp_path / "resumed") == straight_after


def test_resume_latest_in_the_same_run_dir_rewrites_metrics_as_if_never_stopped(tmp_path):
    straight, straight_model, _ = build(tmp_path / "straight", "pairs", epochs=2, accumulation_steps=2)
    straight.fit()

    class StopAt(Callback):
        def __init__(self, active: bool) -> None:
            self.active = active

        def on_step_end(self, state):
            if self.active and state.step == 5:
                raise KeyboardInterrupt

    run_dir = tmp_path / "interrupted"
    trainer, _, _ = build(run_dir, "pairs", epochs=2, accumulation_steps=2, checkpoint_every_steps=2)
    trainer.callbacks.append(StopAt(active=True))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "failed"
    resumed, resumed_model, _ = build(
        run_dir, "pairs", epochs=2, accumulation_steps=2, checkpoint_every_steps=2
    )
    resumed.callbacks.append(StopAt(active=False))  # the same callback classes in the same order
    resumed.fit(resume="latest")
    for name, value in straight_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[name]), name
    assert train_records(run_dir) == train_records(tmp_path / "straight")
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "completed"


def test_resume_refuses_different_callbacks_or_length(tmp_path):
    trainer, _, _ = build(tmp_path, "pairs", epochs=1)
    trainer.fit()
    other, _, _ = build(tmp_path, "pairs", epochs=1)
    other.callbacks.pop()
    with pytest.raises(checkpoints.CheckpointError, match="callbacks"):
        other.fit(resume="latest")
    longer, _, _ = build(tmp_path, "pairs", epochs=2)
    with pytest.raises(ValueError, match="total_steps"):
        longer.fit(resume="latest")


def test_resume_latest_without_checkpoints_starts_fresh(tmp_path):
    trainer, _, _ = build(tmp_path, "pairs", epochs=1)
    assert trainer.fit(resume="latest").step == 6


SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_trainer_resume import build
from cadence.train.callback import Callback

class KillAt(Callback):
    def __init__(self, step):
        self.kill_step = step
    def on_step_end(self, state):
        if state.step == self.kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

mode, run_dir, out = sys.argv[1:4]
trainer, model, _ = build(run_dir, "dataloader", checkpoint_every_steps=4, accumulation_steps=1)
trainer.callbacks.append(KillAt(9 if mode == "kill" else -1))
trainer.fit(resume="latest" if mode == "resume" else None)
torch.save(model.state_dict(), out)
"""


@pytest.mark.slow
def test_sigkill_then_resume_in_a_fresh_process_is_bitwise_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(HERE)))
    environment = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}

    def run(mode, run_dir, out):
        return subprocess.run(
            [sys.executable, str(script), mode, str(run_dir), str(out)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )

    killed = run("kill", tmp_path / "killed", tmp_path / "never.pt")
    assert killed.returncode == -9, killed.stderr
    assert checkpoints.latest_checkpoint(tmp_path / "killed" / "checkpoints").name == "step-00000008.pt"
    resumed = run("resume", tmp_path / "killed", tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses
    try:
        straight, straight_model, _ = build(tmp_path / "straight", "dataloader", checkpoint_every_steps=4)
        straight.fit()
    finally:
        torch.set_num_threads(threads)
    final_resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    final_straight = straight_model.state_dict()
    for name, value in final_straight.items():
        assert torch.equal(value, final_resumed[name]), name
    assert train_records(tmp_path / "killed") == train_records(tmp_path / "straight")


def test_fp16_resume_restores_the_loss_scale_and_is_exact(tmp_path):
    class InfOnce(Callback):
        def on_after_backward(self, state):
            if state.step == 1:  # a skipped update halves the scale before the checkpoint at step 4
                next(state.model.parameters()).grad[0, 0] = float("inf")

    def run(run_dir, resume=None):
        inputs, targets = make_data(samples=32)
        model = make_model(seed=2)
        trainer = Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
            F.cross_entropy,
            PairLoader(inputs, targets, batch_size=8),
            epochs=2,
            precision="fp16",
            grad_clip=1.0,
            label_smoothing=0.1,
            callbacks=[InfOnce()],
            run_dir=run_dir,
            checkpoint_every_steps=2,
            keep_checkpoints=10,
            progress=False,
        )
        return trainer, model, trainer.fit(resume=resume)

    straight, straight_model, straight_state = run(tmp_path / "straight")
    saved = checkpoints.checkpoint_path(tmp_path / "straight" / "checkpoints", 4)
    assert checkpoints.load_checkpoint(saved)["precision"]["scaler"]["scale"] == 2.0**15
    resumed, resumed_model, resumed_state = run(tmp_path / "resumed", resume=saved)
    assert resumed.precision.scale == straight.precision.scale
    assert resumed_state.skipped_steps == straight_state.skipped_steps == 1
    for name, value in straight_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[name]), name


def test_dataloader_sampler_gets_the_epoch(tmp_path):
    epochs = []

    class Sampler(torch.utils.data.Sampler):
        def __init__(self, size):
            self.size = size

        def set_epoch(self, epoch):
            epochs.append(epoch)

        def __iter__(self):
            return iter(range(self.size))

        def __len__(self):
            return self.size

    inputs, targets = make_data(samples=16)
    dataset = TensorDataset(inputs, targets)
    model = make_model()
    Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        DataLoader(dataset, batch_size=8, sampler=Sampler(16)),
        epochs=3,
        progress=False,
    ).fit()
    assert epochs == [0, 1, 2]


class StopOnceAt(Callback):
    """Asks the loop to stop after update ``step`` (a time limit, say), then never again."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def on_step_end(self, state):
        if state.step == self.step:
            state.should_stop = True
            state.stop_reason = f"stopped at {self.step}"


@pytest.mark.parametrize("stop_step", [5, 6, 7])  # mid-epoch, at an epoch boundary, mid-epoch
def test_resume_after_a_stop_inside_an_epoch_continues_that_epoch(tmp_path, stop_step):
    straight, straight_model, _ = build(tmp_path / "straight", "pairs", epochs=2)
    straight.fit()

    run_dir = tmp_path / "stopped"
    stopped, _, _ = build(run_dir, "pairs", epochs=2)
    stopped.callbacks.append(StopOnceAt(stop_step))
    state = stopped.fit()
    assert state.step == stop_step
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "stopped"

    resumed, resumed_model, _ = build(run_dir, "pairs", epochs=2)
    resumed.callbacks.append(StopOnceAt(None))
    assert resumed.fit(resume="latest").step == straight.state.step
    for name, value in straight_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[name]), name
    train_only = [r for r in train_records(run_dir) if r["kind"] == "train"]
    assert train_only == [r for r in train_records(tmp_path / "straight") if r["kind"] == "train"]
