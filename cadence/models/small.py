"""Small reference networks for the offline datasets.

- ``cnn1d``: the MNIST-1D reference CNN (Greydanus & Kobak 2024, ``ConvBase``): three 1-D convolutions with
  25 channels (kernel 5, then 3 and 3; stride 2, padding 1), ReLU, a linear layer on the flattened features.
  5,210 parameters for length-40 inputs; about 94% test accuracy in the paper.
- ``cnn28``: the Fashion-MNIST CNN of TensorFlow's cyclical-learning-rate tutorial (TensorFlow Addons,
  "CyclicalLearningRate"): Conv 16@5×5 ReLU → MaxPool 2 → Conv 32@5×5 ReLU → MaxPool 2 → SpatialDropout 0.2
  → global average pooling → Dense 128 ReLU → Dense 10. 18,762 parameters. Unpadded ("valid") convolutions
  as in Keras; PyTorch's default initialization (Keras uses Glorot-uniform kernels and zero biases).
- ``mlp``: fully connected ReLU network on flattened inputs (MNIST-1D's MLP baseline: two hidden layers
  of 100).
- ``resnet-small``: a pre-activation-free CIFAR-style ResNet (He et al. 2016, §4.2) for 32×32 inputs: a 3×3
  stem, three stages of basic blocks with widths ``width, 2·width, 4·width`` (stride 2 between stages),
  global average pooling, a linear classifier. ``blocks=(3, 3, 3)`` with ``width=16`` is ResNet-20.

Every factory takes ``num_classes`` and ``input_shape`` (the shape of one example) so that a config can
build any model from the dataset's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CNN1D", "CNN28", "MLP", "ResNetSmall", "cnn1d", "cnn28", "mlp", "resnet_small"]


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class CNN1D(nn.Module):
    """MNIST-1D reference CNN. Inputs ``(N, L)`` or ``(N, 1, L)``; outputs ``(N, num_classes)`` logits."""

    def __init__(self, num_classes: int = 10, channels: int = 25, input_length: int = 40) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        length = input_length
        for kernel in (5, 3, 3):
            length = _conv_length(length, kernel, 2, 1)
        if length < 1:
            raise ValueError(f"input_length={input_length} is too short for three stride-2 convolutions")
        self.linear = nn.Linear(channels * length, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs.reshape(inputs.shape[0], 1, inputs.shape[-1])
        hidden = torch.relu(self.conv1(hidden))
        hidden = torch.relu(self.conv2(hidden))
        hidden = torch.relu(self.conv3(hidden))
        return self.linear(hidden.flatten(1))


class CNN28(nn.Module):
    """The TensorFlow cyclical-LR tutorial's Fashion-MNIST CNN (see the module docstring)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        filters: Sequence[int] = (16, 32),
        kernel_size: int = 5,
        dropout: float = 0.2,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        first, second = filters
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, first, kernel_size),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, kernel_size),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout2d(dropout),  # Keras SpatialDropout2D: drops whole feature maps
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Linear(second, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs))


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs."""

    def __init__(
        self, input_size: int, num_classes: int = 10, hidden_sizes: Sequence[int] = (100, 100)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = input_size
        for width in hidden_sizes:
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a (projected when needed) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.norm1(self.conv1(inputs)))
        hidden = self.norm2(self.conv2(hidden))
        return torch.relu(hidden + self.shortcut(inputs))


class ResNetSmall(nn.Module):
    """CIFAR-style ResNet: stem, three stages of :class:`BasicBlock`, global average pool, linear."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 16,
        blocks: Sequence[int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages: list[nn.Module] = []
        channels = width
        for stage, count in enumerate(blocks):
            out_channels = width * 2**stage
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                stages.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(inputs)))


def cnn1d(
    num_classes: int = 10,
    input_shape: Sequence[int] | None = None,
    channels: int = 25,
    input_length: int = 40,
) -> CNN1D:
    """The MNIST-1D reference CNN; ``input_shape`` (e.g. ``(40,)``) sets ``input_length`` when given."""
    if input_shape is not None:
        input_length = int(input_shape[-1])
    return CNN1D(num_classes=num_classes, channels=channels, input_length=input_length)


def cnn28(
    num_classes: int = 10,
    input_shape: Sequence[int] | None = None,
    in_channels: int = 1,
    filters: Sequence[int] = (16, 32),
    kernel_size: int = 5,
    dropout: float = 0.2,
    hidden: int = 128,
) -> CNN28:
    """The cyclical-LR tutorial's Fashion-MNIST CNN; ``input_shape`` ``(C, H, W)`` sets ``in_channels``."""
    if input_shape is not None:
        in_channels = int(input_shape[0])
    if len(filters) != 2:
        raise ValueError(f"cnn28 has two convolutions: filters must have 2 values, got {filters=}")
    return CNN28(in_channels, num_classes, tuple(filters), kernel_size, dropout, hidden)


def mlp(
    num_classes: int = 10,
    input_shape: Sequence[int] | None = None,
    input_size: int | None = None,
    hidden_sizes: Sequence[int] = (100, 100),
) -> MLP:
    """A ReLU MLP; the input size is ``input_size`` or the product of ``input_shape``."""
    if input_size is None:
        if input_shape is None:
            raise ValueError("mlp needs input_size or input_shape")
        input_size = math.prod(int(size) for size in input_shape)
    return MLP(input_size, num_classes, tuple(hidden_sizes))


def resnet_small(
    num_classes: int = 10,
    input_shape: Sequence[int] | None = None,
    in_channels: int = 3,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
) -> ResNetSmall:
    """A small CIFAR-style ResNet (``blocks=(3, 3, 3)`` gives ResNet-20)."""
    if input_shape is not None:
        in_channels = int(input_shape[0])
    return ResNetSmall(in_channels, num_classes, width, tuple(blocks))
