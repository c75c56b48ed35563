"""Mixup / CutMix as a Trainer callback: a thin wrapper over :func:`cadence.regularization.mixup_batch`.

The callback replaces ``state.batch`` in ``on_batch_start`` with mixed inputs and soft targets. Its randomness
comes from a generator seeded by ``(state.seed, state.step, state.batch_index)``, so the mixed batch is a pure
function of the training clock: a resumed run mixes exactly like an uninterrupted one, and the callback keeps
no state. When the Trainer applies label smoothing it does so *before* ``on_batch_start``, so the targets
mixed here are already smoothed and the two compose (mass ``(1-ε)·λ + ε/K`` and so on).
"""

from __future__ import annotations

import numpy as np
import torch

from cadence.errors import ConfigError
from cadence.regularization import cutmix_batch, mixup_batch
from cadence.train.callback import Callback
from cadence.train.state import TrainState

__all__ = ["Mixup", "mixing_generator"]

# Distinguishes this callback's random stream from any other consumer of (seed, step, batch_index).
_STREAM_TAG = 0x6D6978


def mixing_generator(seed: int, step: int, batch_index: int) -> torch.Generator:
    """A CPU generator whose state is a pure function of ``(seed, step, batch_index)``."""
    sequence = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step), int(batch_index), _STREAM_TAG])
    return torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1))


class Mixup(Callback):
    """Mix every training micro-batch with mixup and/or CutMix until ``until_step``.

    Args:
        alpha: mixup's ``Beta(α, α)`` parameter; 0 disables mixup (CutMix only). Zhang et al. use 0.2–0.4 on
            ImageNet, 1.0 on CIFAR-10.
        cutmix_alpha: CutMix's ``Beta(α, α)`` parameter; 0 (default) disables CutMix. Yun et al. use 1.0.
        switch_prob: with both enabled, the probability of CutMix for a batch (else mixup), as in timm.
        until_step: stop mixing at this step: ``None`` mixes to the end, an ``int`` is a step, a ``float`` in
            ``(0, 1]`` is a fraction of ``total_steps`` (turning mixup off for the last epochs often helps).
        num_classes: number of classes for integer labels; defaults to the Trainer's ``num_classes``.

    The loss must accept soft targets (``soft_cross_entropy`` or ``nn.CrossEntropyLoss``); the Trainer checks
    it with :func:`cadence.regularization.check_soft_target_loss` for callbacks with
    ``produces_soft_targets = True``.
    """

    produces_soft_targets = True
    shapes_training = True

    def __init__(
        self,
        alpha: float = 0.2,
        cutmix_alpha: float = 0.0,
        switch_prob: float = 0.5,
        until_step: int | float | None = None,
        num_classes: int | None = None,
    ) -> None:
        for name, value in (("alpha", alpha), ("cutmix_alpha", cutmix_alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"Mixup {name} must be a number >= 0, got {name}={value!r}")
        if alpha == 0 and cutmix_alpha == 0:
            raise ConfigError("Mixup needs alpha > 0 (mixup) or cutmix_alpha > 0 (CutMix); both are 0")
        if not 0.0 <= switch_prob <= 1.0:
            raise ConfigError(f"Mixup switch_prob must be in [0, 1], got {switch_prob=}")
        if until_step is not None:
            if isinstance(until_step, bool) or not isinstance(until_step, (int, float)):
                raise ConfigError(f"Mixup until_step must be None, a step or a fraction, got {until_step=}")
            if isinstance(until_step, float) and not 0.0 < until_step <= 1.0:
                raise ConfigError(f"Mixup until_step as a fraction must be in (0, 1], got {until_step=}")
            if isinstance(until_step, int) and until_step < 0:
                raise ConfigError(f"Mixup until_step must be >= 0, got {until_step=}")
        if num_classes is not None and num_classes < 1:
            raise ConfigError(f"Mixup num_classes must be a positive integer, got {num_classes=}")
        self.alpha = float(alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.switch_prob = float(switch_prob)
        self.until_step = until_step
        self.num_classes = num_classes

    def __repr__(self) -> str:
        return (
            f"Mixup(alpha={self.alpha}, cutmix_alpha={self.cutmix_alpha}, switch_prob={self.switch_prob}, "
            f"until_step={self.until_step!r}, num_classes={self.num_classes!r})"
        )

    def last_mixing_step(self, total_steps: int) -> int:
        """The first step that is *not* mixed (``total_steps`` when mixing never stops)."""
        if self.until_step is None:
            return total_steps
        if isinstance(self.until_step, float):
            return round(self.until_step * total_steps)
        return int(self.until_step)

    def mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        seed: int,
        step: int,
        batch_index: int,
        num_classes: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix one batch; a pure function of the batch and ``(seed, step, batch_index)``."""
        generator = mixing_generator(seed, step, batch_index)
        num_classes = num_classes if num_classes is not None else self.num_classes
        use_cutmix = self.alpha == 0 or (
            self.cutmix_alpha > 0 and float(torch.rand((), generator=generator)) < self.switch_prob
        )
        if use_cutmix:
            return cutmix_batch(x, y, self.cutmix_alpha, num_classes=num_classes, generator=generator)
        return mixup_batch(x, y, self.alpha, num_classes=num_classes, generator=generator)

    def on_batch_start(self, state: TrainState) -> None:
        if state.batch is None or state.step >= self.last_mixing_step(state.total_steps):
            return
        x, y = state.batch
        num_classes = self.num_classes if self.num_classes is not None else state.num_classes
        if num_classes is None and not y.is_floating_point():
            raise ConfigError(
                "Mixup needs num_classes (give it to Mixup or to the Trainer) for integer labels"
            )
        state.batch = self.mix(
            x, y, seed=state.seed, step=state.step, batch_index=state.batch_index, num_classes=num_classes
        )
