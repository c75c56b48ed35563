"""Snapshot and exact restore of everything an LR sweep touches: model, optimizer, gradients, RNG."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from cadence.train.checkpoint import capture_rng_state, restore_rng_state

__all__ = ["TrainingSnapshot"]


class TrainingSnapshot:
    """A deep copy of the training state, restorable any number of times.

    Covers the model's parameters and buffers (``state_dict``, e.g. BatchNorm running statistics), the
    parameters' ``.grad``, every module's train/eval flag, the optimizer's ``state_dict`` (momentum buffers,
    Adam moments and step counts, and the param groups' ``lr``, ``momentum``, ``weight_decay``, ``lr_scale``,
    ...), the random number generators of Python, NumPy, torch (CPU) and CUDA (when initialised), and the
    epoch of a data sampler that has ``set_epoch`` (``DistributedSampler``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, sampler: Any = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.model_state = copy.deepcopy(model.state_dict())
        self.gradients = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self.training_flags = [module.training for module in model.modules()]
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())
        self.random_state = capture_rng_state()  # the checkpoint's own capture: one owner of the RNGs
        self.sampler = sampler if hasattr(sampler, "epoch") else None
        self.sampler_epoch = getattr(self.sampler, "epoch", None)

    def restore(self) -> None:
        """Put everything back exactly as it was when the snapshot was taken."""
        with torch.no_grad():
            self.model.load_state_dict(self.model_state)
        for parameter, gradient in zip(self.model.parameters(), self.gradients):
            parameter.grad = None if gradient is None else gradient.clone()
        for module, flag in zip(self.model.modules(), self.training_flags):
            module.training = flag
        # load_state_dict may keep references to the tensors it is given: hand it a fresh copy each time so
        # the snapshot itself is never updated in place by a later sweep.
        self.optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
        restore_rng_state(self.random_state)
        if self.sampler is not None:
            self.sampler.epoch = self.sampler_epoch
