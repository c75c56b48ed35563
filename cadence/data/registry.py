"""Dataset registry: ``load(name, **options)`` returns a :class:`DatasetSplits` held in memory.

Every dataset accepts the common options below on top of its own ones:

- ``subset`` (alias ``train_size``): keep a deterministic random subset of that many training examples;
- ``test_size``: the same for the test split;
- ``subset_seed``: seed of those subsets (default 0), so ``subset=1000`` is the same 1000 examples on every
  machine and every run;
- ``normalize``: standardize inputs with the training split's mean and standard deviation (per channel for
  images, one scalar otherwise); the statistics go to ``meta["mean"]`` / ``meta["std"]``.

Example::

    data = load("mnist1d")                      # 4000 + 1000 examples of length 40, 10 classes
    data = load("fashion-mnist", subset=5000)   # 5000 training images, full test set
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from cadence.data.splits import DatasetSplits, TensorPair
from cadence.errors import ConfigError

__all__ = ["COMMON_OPTIONS", "available_datasets", "dataset_options", "load", "register_dataset"]

Loader = Callable[..., DatasetSplits]

#: name -> "module:function", imported only when the dataset is loaded.
_BUILTIN: dict[str, str] = {
    "mnist1d": "cadence.data.mnist1d:load_mnist1d",
    "fashion-mnist": "cadence.data.idx:load_fashion_mnist",
    "mnist": "cadence.data.idx:load_mnist",
    "cifar10": "cadence.data.cifar:load_cifar10",
    "digits": "cadence.data.tabular:load_digits",
    "mnist5k": "cadence.data.tabular:load_mnist5k",
    "image-folder": "cadence.data.image_folder:load_image_folder",
    "synthetic": "cadence.data.tabular:load_synthetic",
}
_REGISTERED: dict[str, Loader] = {}

COMMON_OPTIONS = ("subset", "train_size", "test_size", "subset_seed", "normalize")


def register_dataset(name: str, loader: Loader) -> None:
    """Make ``load(name, **options)`` call ``loader(**options)`` (which returns a DatasetSplits)."""
    _REGISTERED[name] = loader


def available_datasets() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted({*_BUILTIN, *_REGISTERED})


def suggest(value: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` when ``value`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve(name: str) -> Loader:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        import importlib

        module_name, function_name = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(module_name), function_name)
    raise ConfigError(
        f"unknown dataset {name!r}{suggest(name, available_datasets())}; "
        f"choose one of: {', '.join(available_datasets())}"
    )


def dataset_options(name: str) -> list[str]:
    """Options accepted by dataset ``name`` (its own plus :data:`COMMON_OPTIONS`)."""
    loader = _resolve(name)
    parameters = inspect.signature(loader).parameters.values()
    own = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return sorted({*own, *COMMON_OPTIONS})


def _check_size(field: str, value: Any, available: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"data option {field} must be a positive integer, got {value!r}")
    if value > available:
        raise ConfigError(f"data option {field}={value} exceeds the {available} examples available")
    return value


def _subset(pair: TensorPair, size: int, seed: int) -> TensorPair:
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(pair), generator=generator)[:size]
    # Keep the original order among the chosen rows: subsets of growing size are then nested prefixes
    # of one permutation, and the data order only depends on the loader's own seed.
    return pair.take(indices.sort().values)


def _standardize(data: DatasetSplits) -> DatasetSplits:
    inputs = data.train.inputs.float()
    if inputs.dim() == 4:  # images: one mean/std per channel
        dims = (0, 2, 3)
        mean = inputs.mean(dim=dims, keepdim=True)
        std = inputs.std(dim=dims, keepdim=True).clamp_min(1e-8)
    else:
        mean = inputs.mean()
        std = inputs.std().clamp_min(1e-8)
    data.train = TensorPair((inputs - mean) / std, data.train.targets)
    data.test = TensorPair((data.test.inputs.float() - mean) / std, data.test.targets)
    data.meta["mean"] = mean.flatten().tolist()
    data.meta["std"] = std.flatten().tolist()
    return data


def load(name: str, **options: Any) -> DatasetSplits:
    """Load dataset ``name`` into memory; see the module docstring for the common options.

    Raises :class:`~cadence.errors.ConfigError` for an unknown name or option (the message lists the valid
    ones) and for missing, corrupt or truncated files (the message names the file).
    """
    loader = _resolve(name)
    subset = options.pop("subset", None)
    train_size = options.pop("train_size", None)
    if subset is not None and train_size is not None:
        raise ConfigError("give either data option subset or train_size (they are the same), not both")
    subset = subset if subset is not None else train_size
    test_size = options.pop("test_size", None)
    subset_seed = options.pop("subset_seed", 0)
    normalize = options.pop("normalize", False)
    if not isinstance(normalize, bool):
        raise ConfigError(f"data option normalize must be true or false, got {normalize!r}")
    valid = [option for option in dataset_options(name) if option not in COMMON_OPTIONS]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(loader).parameters.values())
    for key in [] if takes_any else options:  # a loader with **options checks them itself
        if key not in valid:
            raise ConfigError(
                f"unknown option {key!r} for dataset {name!r}{suggest(key, valid + list(COMMON_OPTIONS))}; "
                f"valid options: {', '.join(valid + list(COMMON_OPTIONS))}"
            )
    data = loader(**options)
    if subset is not None:
        data.train = _subset(data.train, _check_size("subset", subset, len(data.train)), subset_seed)
    if test_size is not None:
        data.test = _subset(data.test, _check_size("test_size", test_size, len(data.test)), subset_seed + 1)
    if normalize:
        data = _standardize(data)
    return data
