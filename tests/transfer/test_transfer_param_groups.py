"""layer_groups: coverage, forward order, splits; discriminative_lrs: exact lr_scale values."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transfer_helpers import OutOfOrder, stack

from cadence.errors import ConfigError
from cadence.transfer.param_groups import discriminative_lrs, layer_groups


def ids(groups):
    return [id(p) for group in groups for p in group.params]


def test_groups_cover_every_parameter_exactly_once():
    model = OutOfOrder()
    groups = layer_groups(model, example_input=torch.zeros(2, 4))
    assert sorted(ids(groups)) == sorted(id(p) for p in model.parameters())
    assert len(ids(groups)) == len(set(ids(groups)))


def test_forward_order_beats_registration_order():
    model = OutOfOrder()
    by_forward = [g.name for g in layer_groups(model, example_input=torch.zeros(2, 4))]
    # the tied layer's weight already belongs to stem; only its bias is left for "tied"
    assert by_forward == ["stem", "tied", "norm", "blocks.0", "blocks.1", "head", "unused"]
    by_registration = [g.name for g in layer_groups(model)]
    assert by_registration == ["head", "blocks.0", "blocks.1", "norm", "stem", "tied", "unused"]
    tied = layer_groups(model, example_input=torch.zeros(2, 4))[1]
    assert tied.names == ["tied.bias"]


def test_example_input_pass_changes_nothing():
    model = OutOfOrder().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_groups(model, example_input=torch.randn(5, 4))
    assert model.training
    assert model.norm.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # batch-norm statistics untouched (eval-mode pass)


def test_n_groups_and_split_names():
    model = stack()
    assert [g.name for g in layer_groups(model, n_groups=2)] == ["0+1", "2+3"]
    assert [g.name for g in layer_groups(model, n_groups=3)] == ["0+1", "2", "3"]
    assert [g.name for g in layer_groups(model, split=["2"])] == ["0+1", "2+3"]
    assert [g.name for g in layer_groups(model, expand_sequential=True)] == ["0.0", "0.1", "1.0", "2.0", "3"]
    custom = layer_groups(model, split=lambda m: [[m[0], m[1]], [m[2], m[3]]])
    assert [len(g.params) for g in custom] == [6, 4]


def test_layer_groups_errors():
    with pytest.raises(ConfigError, match="n_groups"):
        layer_groups(stack(), n_groups=0)
    with pytest.raises(ConfigError, match="more than the 4 units"):
        layer_groups(stack(), n_groups=5)
    with pytest.raises(ConfigError, match="not units"):
        layer_groups(stack(), split=["nope"])
    with pytest.raises(ConfigError, match="without a group"):
        layer_groups(stack(), split=lambda m: [[m[0]]])


def test_lr_scale_factor_is_geometric_towards_the_input():
    groups = layer_groups(stack(), n_groups=3)
    entries = discriminative_lrs(groups, factor=2.0, lr=0.1)
    assert [e["lr_scale"] for e in entries] == [0.25, 0.5, 1.0]
    assert [e["lr"] for e in entries] == [0.025, 0.05, 0.1]
    assert [e["layer_group"] for e in entries] == [0, 1, 2]


def test_lr_scale_from_a_range():
    entries = discriminative_lrs(layer_groups(stack(), n_groups=3), lr_range=(1e-4, 1e-2))
    assert [e["lr_scale"] for e in entries] == pytest.approx([0.01, 0.1, 1.0], rel=1e-12)
    assert entries[0]["lr"] == pytest.approx(1e-4)
    assert entries[-1]["lr"] == 1e-2


def test_ulmfit_factor_default():
    entries = discriminative_lrs(layer_groups(stack(), n_groups=3))
    assert [e["lr_scale"] for e in entries] == [1 / 2.6**2, 1 / 2.6, 1.0]


def test_norm_and_bias_exemption_splits_groups():
    model = stack()
    entries = discriminative_lrs(
        layer_groups(model, n_groups=2), factor=2.0, weight_decay_exempt_norm_bias=True
    )
    decayed = {id(p) for e in entries if "weight_decay" not in e for p in e["params"]}
    exempt = {id(p) for e in entries if e.get("weight_decay_scale") == 0.0 for p in e["params"]}
    assert exempt == {id(p) for n, p in model.named_parameters() if n.endswith("bias") or n.startswith("0.1")}
    assert decayed == {
        id(p) for n, p in model.named_parameters() if n.endswith("weight") and not n.startswith("0.1")
    }
    assert [e["lr_scale"] for e in entries] == [0.5, 0.5, 1.0, 1.0]
    optimizer = torch.optim.AdamW(entries, lr=1.0, weight_decay=0.1)
    from cadence.hyperparams import set_hyperparams

    set_hyperparams(optimizer, 0, lr=0.2, weight_decay=0.05)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.1, 0.2, 0.2]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0, 0.05, 0.0]


def test_discriminative_lrs_errors():
    groups = layer_groups(stack(), n_groups=2)
    with pytest.raises(ConfigError, match="factor"):
        discriminative_lrs(groups, factor=0.5)
    with pytest.raises(ConfigError, match="lr_range"):
        discriminative_lrs(groups, lr_range=(1e-2, 1e-4))
    with pytest.raises(ConfigError, match="at least one group"):
        discriminative_lrs([])


def test_plain_parameter_lists_and_modules_work():
    model = stack()
    entries = discriminative_lrs([model[0], list(model[3].parameters())], factor=3.0)
    assert [e["lr_scale"] for e in entries] == [1 / 3, 1.0]
    assert isinstance(entries[0]["params"][0], nn.Parameter)
