"""Mixup inside the Trainer: composes with label smoothing and resumes exactly."""

import pytest
import torch
from torch import nn

from cadence.callbacks.mixup import Mixup
from cadence.data import TensorLoader
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class RecordTargets(Callback):
    def __init__(self):
        self.targets = []

    def on_batch_start(self, state):
        self.targets.append(state.batch[1].clone())


def _fit(run_dir, resume=None, callbacks=()):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(48, 1, 12, generator=generator)
    targets = torch.randint(0, 3, (48,), generator=generator)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        nn.functional.cross_entropy,
        TensorLoader(inputs, targets, 8, seed=3),
        total_steps=15,
        callbacks=[Mixup(alpha=0.4, cutmix_alpha=1.0), *callbacks],
        label_smoothing=0.1,
        num_classes=3,
        run_dir=run_dir,
        checkpoint_every_steps=5,
        keep_checkpoints=5,
        progress=False,
        device="cpu",
        seed=4,
    )
    trainer.fit(resume=resume)
    return model


def test_mixup_resume_is_exact(tmp_path):
    straight = _fit(tmp_path / "straight")
    # Resume mid-epoch (step 5 of 6 per epoch) from the straight run's checkpoint, in a fresh Trainer.
    checkpoint = tmp_path / "straight" / "checkpoints" / "step-00000005.pt"
    resumed = _fit(tmp_path / "resumed", resume=checkpoint)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_mixup_mixes_smoothed_targets_in_the_trainer(tmp_path):
    recorder = RecordTargets()
    _fit(None, callbacks=[recorder])
    # The recorder runs after Mixup: targets are soft, keep the smoothing floor and sum to one.
    assert len(recorder.targets) == 15
    for targets in recorder.targets:
        assert targets.is_floating_point()
        assert torch.allclose(targets.sum(dim=1), torch.ones(len(targets)))
        assert float(targets.min()) >= 0.1 / 3 - 1e-6
    unmixed = 1 - 0.1 + 0.1 / 3  # a smoothed one-hot row's largest entry
    assert any(bool((targets.max(dim=1).values < unmixed - 1e-3).any()) for targets in recorder.targets)
