"""MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024).

4000 + 1000 one-dimensional signals of length 40 in 10 classes, generated procedurally from ten digit-like
templates. The published benchmark (``get_dataset_args()`` defaults, seed 42) is embedded in cadence as a
compressed float32 ``.npz`` (so ``load("mnist1d")`` works with nothing extra installed); other arguments are
generated offline with the ``mnist1d`` package's ``make_dataset`` and cached under ``~/.cache/cadence``.
The download in ``mnist1d.get_dataset`` is never used.

Reference figures (the paper): CNN 94%, MLP 68%, logistic regression 32%, human 96% test accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadence.data.files import cache_dir, describe_files
from cadence.data.splits import DatasetSplits, TensorPair
from cadence.errors import ConfigError, require

__all__ = ["EMBEDDED_PATH", "generate_mnist1d", "load_mnist1d"]

EMBEDDED_PATH = Path(__file__).with_name("embedded") / "mnist1d.npz"

#: ``mnist1d.get_dataset_args()`` defaults (the published benchmark), minus the download URL.
DEFAULT_ARGS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}


def generate_mnist1d(**arguments: Any) -> dict[str, np.ndarray]:
    """Generate MNIST-1D with ``mnist1d.make_dataset`` (offline); returns float32/int64 arrays.

    ``mnist1d`` seeds the global ``random`` and ``numpy`` generators; their states are restored afterwards
    so that loading data never changes the caller's random streams.
    """
    data_module = require("mnist1d.data", "datasets", "generating MNIST-1D")
    utils = require("mnist1d.utils", "datasets", "generating MNIST-1D")
    args = data_module.get_dataset_args(as_dict=True)
    args.update(arguments)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        dataset = data_module.make_dataset(utils.ObjectView(args))
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return {
        "x": np.asarray(dataset["x"], dtype=np.float32),
        "y": np.asarray(dataset["y"], dtype=np.int64),
        "x_test": np.asarray(dataset["x_test"], dtype=np.float32),
        "y_test": np.asarray(dataset["y_test"], dtype=np.int64),
    }


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("x", "y", "x_test", "y_test")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ConfigError(f"{path}: corrupt or incomplete MNIST-1D archive ({error})") from error
    return arrays


def load_mnist1d(cache: bool = True, **arguments: Any) -> DatasetSplits:
    """Load MNIST-1D; keyword arguments override ``get_dataset_args()`` (e.g. ``num_samples=10000``).

    With the default arguments the embedded copy is used (identical to what ``make_dataset`` produces,
    stored as float32). Other arguments are generated and, with ``cache=True``, cached as ``.npz``.
    """
    unknown = sorted(set(arguments) - set(DEFAULT_ARGS))
    if unknown:
        raise ConfigError(
            f"unknown MNIST-1D option(s) {', '.join(unknown)}; valid: cache, {', '.join(DEFAULT_ARGS)}"
        )
    args = {**DEFAULT_ARGS, **arguments}
    read: Path | None = None
    if args == DEFAULT_ARGS and EMBEDDED_PATH.is_file():
        arrays, source, read = _read_npz(EMBEDDED_PATH), "embedded", EMBEDDED_PATH
    else:
        key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
        path = cache_dir("mnist1d", f"mnist1d-{key}.npz")
        if cache and path.is_file():
            arrays, source, read = _read_npz(path), str(path), path
        else:
            arrays, source = generate_mnist1d(**arguments), "generated"
            if cache:
                path.parent.mkdir(parents=True, exist_ok=True)
                # a unique temporary name, then an atomic rename: processes generating the same
                # arguments at once (one per rank) never see a partly written file
                handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz")
                with os.fdopen(handle, "wb") as output:
                    np.savez_compressed(output, **arrays)
                os.replace(temporary, path)
    train = TensorPair(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]))
    test = TensorPair(torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]))
    return DatasetSplits(
        train=train,
        test=test,
        num_classes=10,
        input_shape=(int(train.inputs.shape[1]),),
        name="mnist1d",
        meta={
            "classes": [str(digit) for digit in range(10)],
            "source": source,
            "arguments": args,
            "files": describe_files({read.name: read}) if read is not None else [],
        },
    )
