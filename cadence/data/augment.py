"""Batched image augmentation on tensors: random crop with padding, horizontal flip, cutout.

Everything works on a whole batch ``(N, C, H, W)`` at once on whatever device the batch lives on (no
per-image Python loop), and draws its randomness from an explicit ``torch.Generator``. The loader seeds
that generator from ``(seed, epoch, batch index)``, so augmentation is reproducible and resumes exactly
(as in Keller Jordan's airbench, which augments CIFAR-10 batches on the GPU).

References: random crop + flip (Krizhevsky et al. 2012; He et al. 2016, padding 4 on CIFAR);
cutout (DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks with Cutout").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cadence.errors import ConfigError

__all__ = ["Augment", "cutout", "random_crop", "random_flip"]


def _check_images(inputs: torch.Tensor, what: str) -> None:
    if inputs.dim() != 4:
        raise ConfigError(
            f"{what} needs image batches of shape (N, C, H, W), got shape {tuple(inputs.shape)}"
        )


def random_crop(
    inputs: torch.Tensor, padding: int, generator: torch.Generator, padding_mode: str = "reflect"
) -> torch.Tensor:
    """Pad each image by ``padding`` pixels and cut out a random window of the original size.

    ``padding_mode`` is ``"reflect"`` (as airbench) or ``"constant"`` (zeros, as torchvision's RandomCrop).
    Every image gets its own offset in ``[0, 2 * padding]`` per axis.
    """
    _check_images(inputs, "random_crop")
    if padding <= 0:
        return inputs
    count, _, height, width = inputs.shape
    padded = F.pad(inputs, (padding, padding, padding, padding), mode=padding_mode)
    device = inputs.device
    top = torch.randint(0, 2 * padding + 1, (count,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (count,), generator=generator, device=device)
    rows = top[:, None] + torch.arange(height, device=device)  # (N, H)
    columns = left[:, None] + torch.arange(width, device=device)  # (N, W)
    batch = torch.arange(count, device=device)[:, None, None]
    # Advanced indexing gathers (N, H, W, C); move channels back to dimension 1.
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], columns[:, None, :]]
    return cropped.permute(0, 3, 1, 2).contiguous()


def random_flip(inputs: torch.Tensor, generator: torch.Generator, probability: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with ``probability``."""
    _check_images(inputs, "random_flip")
    flip = torch.rand(inputs.shape[0], generator=generator, device=inputs.device) < probability
    return torch.where(flip[:, None, None, None], inputs.flip(-1), inputs)


def cutout(inputs: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size``×``size`` square at a random centre of each image (clipped at the borders)."""
    _check_images(inputs, "cutout")
    if size <= 0:
        return inputs
    count, _, height, width = inputs.shape
    device = inputs.device
    center_y = torch.randint(0, height, (count,), generator=generator, device=device)
    center_x = torch.randint(0, width, (count,), generator=generator, device=device)
    top, left = center_y - size // 2, center_x - size // 2
    rows = torch.arange(height, device=device)[None, :]
    columns = torch.arange(width, device=device)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (N, H)
    inside_columns = (columns >= left[:, None]) & (columns < left[:, None] + size)  # (N, W)
    mask = inside_rows[:, :, None] & inside_columns[:, None, :]  # (N, H, W)
    return inputs.masked_fill(mask[:, None], 0)


@dataclass(frozen=True)
class Augment:
    """Crop (with ``crop_padding``), flip and cutout applied in that order to a batch.

    Example: ``Augment(crop_padding=4, flip=True, cutout=8)`` for CIFAR-10. A value of 0/False turns a
    transform off. Calling it as ``augment(inputs, generator)`` returns the augmented batch.
    """

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    padding_mode: str = "reflect"

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.cutout < 0:
            raise ConfigError(
                f"augment crop_padding and cutout must be >= 0, got {self.crop_padding=} {self.cutout=}"
            )
        if self.padding_mode not in ("reflect", "constant", "replicate"):
            raise ConfigError(
                "augment padding_mode must be 'reflect', 'constant' or 'replicate', "
                f"got {self.padding_mode!r}"
            )

    def __call__(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding:
            inputs = random_crop(inputs, self.crop_padding, generator, self.padding_mode)
        if self.flip:
            inputs = random_flip(inputs, generator)
        if self.cutout:
            inputs = cutout(inputs, self.cutout, generator)
        return inputs
