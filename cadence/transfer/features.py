"""Precomputed features: run a frozen body once over the data, then train the head on its outputs.

While the body is frozen (and in eval mode, so batch-norm statistics do not move), its outputs for a given
image never change, so computing them every epoch is wasted work. fastai's ``precompute=True`` (2017 course)
did exactly this. Typical use::

    body, head = model.body(), model.head()          # e.g. a PretrainedClassifier
    train_features = precompute_features(body, (x_train, y_train), cache="~/.cache/feats")
    loader = TensorLoader(train_features.inputs, train_features.targets, batch_size=256)
    ... train ``head`` on ``loader`` (a linear probe) ...
    ... then continue end to end: model(x) == head(body(x)) with the trained head.

The disk cache is keyed by a SHA-256 hash of the body's state dict, its class and the data, so a changed
body or changed data never reuses stale features; files are loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError

__all__ = ["FeatureSet", "fingerprint", "precompute_features"]


@dataclass
class FeatureSet:
    """Features and targets, shaped like cadence's ``TensorPair`` (``.inputs``, ``.targets``)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    #: Where the features were loaded from or written to (None for the in-memory cache).
    path: Path | None = None
    #: True when the features came from the disk cache instead of being computed.
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self):
        # Unpacks like a tuple: ``features, targets = precompute_features(...)``.
        return iter((self.inputs, self.targets))

    def loader(self, batch_size: int, **options: Any):
        """A :class:`cadence.data.TensorLoader` over the features (``options`` go to it)."""
        from cadence.data import TensorLoader  # lazy: the data package is not needed to compute features

        return TensorLoader(self.inputs, self.targets, batch_size, **options)


def _as_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``data`` as one (inputs, targets) pair of tensors."""
    if hasattr(data, "inputs") and hasattr(data, "targets"):
        data = (data.inputs, data.targets)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, targets = data
        if len(inputs) != len(targets):
            raise ConfigError(f"inputs and targets differ in length: {len(inputs)} vs {len(targets)}")
        return inputs, targets
    if hasattr(data, "batches") and callable(data.batches):
        data = data.batches(0)  # a TensorLoader: one epoch (give it shuffle=False and no augmentation)
    if not isinstance(data, Iterable):
        raise ConfigError(
            "data must be a (inputs, targets) pair of tensors, an object with .inputs/.targets, or an "
            f"iterable of (inputs, targets) batches; got {type(data).__name__}"
        )
    pairs = list(data)
    if not pairs:
        raise ConfigError("data has no batches")
    inputs = torch.cat([torch.as_tensor(x) for x, _ in pairs])
    return inputs, torch.cat([torch.as_tensor(y) for _, y in pairs])


def fingerprint(body: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> str:
    """SHA-256 over the body's class name, state dict (names, shapes, dtypes, values) and the data."""
    digest = hashlib.sha256()
    digest.update(type(body).__qualname__.encode())
    for name, tensor in body.state_dict().items():
        digest.update(name.encode())
        _update(digest, tensor)
    _update(digest, inputs)
    _update(digest, targets)
    return digest.hexdigest()


def _update(digest: Any, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    digest.update(tensor.numpy().tobytes())


@torch.no_grad()
def precompute_features(
    body: nn.Module,
    data: Any,
    *,
    cache: str | Path = "memory",
    device: str | torch.device | None = None,
    batch_size: int = 256,
    dtype: torch.dtype | None = None,
) -> FeatureSet:
    """Run ``body`` over ``data`` once, in eval mode without gradients, and return features and targets.

    ``data``: a pair of tensors ``(inputs, targets)``, anything with ``.inputs``/``.targets`` (a
    ``TensorPair``), a ``TensorLoader`` (its epoch 0; build it with ``shuffle=False`` and no augmentation) or
    any iterable of ``(inputs, targets)`` batches. ``cache="memory"`` computes and returns the tensors;
    ``cache=DIRECTORY`` also stores them as ``DIRECTORY/features-<hash>.pt`` and reuses that file when the
    body's weights and the data are unchanged. Features are returned on the CPU (``dtype`` casts them,
    e.g. ``torch.float16`` to halve the memory). The body's train/eval modes are restored afterwards.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size=}")
    if device is None:
        device = next((p.device for p in body.parameters()), torch.device("cpu"))
    device = torch.device(device)
    inputs, targets = _as_tensors(data)

    path: Path | None = None
    if cache != "memory":
        directory = Path(os.path.expanduser(str(cache)))
        path = directory / f"features-{fingerprint(body, inputs, targets)[:32]}.pt"
        if path.is_file():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return FeatureSet(stored["features"], stored["targets"], path=path, from_cache=True)

    modes = {module: module.training for module in body.modules()}
    body.eval()
    try:
        outputs = []
        for start in range(0, len(inputs), batch_size):
            out = body(inputs[start : start + batch_size].to(device))
            outputs.append((out if dtype is None else out.to(dtype)).cpu())
    finally:
        for module, mode in modes.items():
            module.training = mode
    features = torch.cat(outputs)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic write: a crash never leaves a half-written cache file that would later be trusted.
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        torch.save({"features": features, "targets": targets.cpu()}, temporary)
        os.replace(temporary, path)
    return FeatureSet(features, targets.cpu(), path=path)
