"""precompute_features: exact features, memory and disk cache keyed by body weights and data."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transfer_helpers import data

from cadence.errors import ConfigError
from cadence.transfer.features import FeatureSet, fingerprint, precompute_features


def body(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())


def test_features_equal_the_body_in_eval_mode_and_modes_are_restored():
    network = body().train()
    inputs, targets = data(samples=50)
    features = precompute_features(network, (inputs, targets), batch_size=16)
    assert network.training  # restored
    network.eval()
    with torch.no_grad():
        assert torch.allclose(features.inputs, network(inputs))
    assert torch.equal(features.targets, targets)
    assert features.path is None
    first, second = features  # unpacks like a pair
    assert first is features.inputs
    assert second is features.targets


def test_accepts_pairs_objects_and_batch_iterables():
    network = body()
    inputs, targets = data(samples=40)

    class Pair:
        def __init__(self):
            self.inputs, self.targets = inputs, targets

    batches = [(inputs[i : i + 8], targets[i : i + 8]) for i in range(0, 40, 8)]
    a = precompute_features(network, Pair())
    b = precompute_features(network, batches)
    assert torch.allclose(a.inputs, b.inputs)
    with pytest.raises(ConfigError, match="data must be"):
        precompute_features(network, 3)


def test_disk_cache_is_reused_and_keyed_by_weights_and_data(tmp_path):
    network = body()
    inputs, targets = data(samples=32)
    first = precompute_features(network, (inputs, targets), cache=tmp_path)
    assert first.path is not None
    assert first.path.is_file()
    assert not first.from_cache
    again = precompute_features(network, (inputs, targets), cache=tmp_path)
    assert again.from_cache
    assert torch.equal(again.inputs, first.inputs)
    with torch.no_grad():
        network[0].weight.add_(1.0)
    changed = precompute_features(network, (inputs, targets), cache=tmp_path)
    assert not changed.from_cache
    assert changed.path != first.path
    other_data = precompute_features(network, (inputs + 1, targets), cache=tmp_path)
    assert other_data.path not in (first.path, changed.path)
    stored = torch.load(first.path, weights_only=True)  # a plain tensor dict: safe to load
    assert set(stored) == {"features", "targets"}


def test_fingerprint_sees_buffers():
    network = body()
    inputs, targets = data(samples=8)
    before = fingerprint(network, inputs, targets)
    network[1].running_mean.add_(1.0)
    assert fingerprint(network, inputs, targets) != before


def test_train_head_on_features_then_continue_end_to_end():
    network = body()
    head = nn.Linear(6, 3)
    inputs, targets = data(samples=64)
    features = precompute_features(network, (inputs, targets))
    optimizer = torch.optim.SGD(head.parameters(), lr=0.5)
    for _ in range(30):
        loss = nn.functional.cross_entropy(head(features.inputs), features.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    full = nn.Sequential(network, head).eval()
    with torch.no_grad():
        assert torch.allclose(full(inputs), head(features.inputs), atol=1e-6)
    assert isinstance(features, FeatureSet)
    assert len(features) == 64
