"""The micro-batch pieces every training loop shares (cadence.train.step)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from cadence.precision import Precision
from cadence.train.step import backward_micro_batch, gradient_sync


class Wrapper(nn.Module):
    """Stands in for DDP: records which micro-batches ran inside ``no_sync()``."""

    def __init__(self) -> None:
        super().__init__()
        self.inside: list[bool] = []
        self.active = False

    @contextlib.contextmanager
    def no_sync(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False


def test_gradients_are_reduced_only_on_the_last_micro_batch_of_an_update():
    wrapper = Wrapper()
    for micro in range(3):
        with gradient_sync(wrapper, final=micro == 2, group_size=3):
            wrapper.inside.append(wrapper.active)
    assert wrapper.inside == [True, True, False]
    with gradient_sync(nn.Linear(2, 2), final=False, group_size=3):  # a plain module: nothing to skip
        pass


def test_accumulated_micro_batches_make_one_mean_loss_gradient():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    inputs, targets = torch.randn(8, 3), torch.randint(0, 2, (8,))
    loss_fn = nn.functional.cross_entropy
    losses = []
    for part in (slice(0, 4), slice(4, 8)):
        _, loss = backward_micro_batch(model, loss_fn, inputs[part], targets[part], Precision("fp32"), 2)
        losses.append(loss.item())
    accumulated = model.weight.grad.clone()
    model.zero_grad()
    loss_fn(model(inputs), targets).backward()
    torch.testing.assert_close(accumulated, model.weight.grad)
    assert losses[0] == loss_fn(model(inputs[:4]), targets[:4]).item()  # each micro-batch's own loss
