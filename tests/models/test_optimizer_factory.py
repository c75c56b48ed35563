import pytest
import torch
from torch import nn

from cadence import optimizers, set_hyperparams
from cadence.errors import ConfigError


def network() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4 * 6 * 6))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("rmsprop", torch.optim.RMSprop),
        ("adagrad", torch.optim.Adagrad),
    ],
)
def test_names_build_torch_optimizers(name, cls):
    optimizer = optimizers.create(name, network())
    assert type(optimizer) is cls
    assert len(optimizer.param_groups) == 1


def test_sgd_options():
    optimizer = optimizers.create("sgd", network(), lr=0.1, momentum=0.9, nesterov=True)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, True)


def test_no_decay_norm_bias_groups():
    model = network()
    optimizer = optimizers.create("adamw", model, weight_decay=0.1, no_decay_norm_bias=True)
    decayed, exempt = optimizer.param_groups
    assert [p.shape for p in decayed["params"]] == [model[0].weight.shape]
    exempt_ids = {id(p) for p in exempt["params"]}
    norms = [*model[1].parameters(), *model[3].parameters()]
    expected = {id(model[0].bias)} | {id(p) for p in norms}
    assert exempt_ids == expected
    assert decayed["weight_decay"] == 0.1
    assert exempt["weight_decay"] == 0.0
    assert exempt["weight_decay_scale"] == 0.0
    set_hyperparams(optimizer, 0, weight_decay=0.5)  # a schedule keeps the exemption
    assert (decayed["weight_decay"], exempt["weight_decay"]) == (0.5, 0.0)


def test_no_decay_on_param_groups_keeps_group_keys():
    model = network()
    groups = [
        {"params": list(model[0].parameters()), "lr_scale": 0.1},
        {"params": list(model[1].parameters())},
    ]
    optimizer = optimizers.create("sgd", groups, weight_decay=1e-4, no_decay_norm_bias=True)
    scales = [(g.get("lr_scale"), g["weight_decay"], len(g["params"])) for g in optimizer.param_groups]
    assert scales == [(0.1, 1e-4, 1), (0.1, 0.0, 1), (None, 0.0, 2)]


def test_frozen_parameters_are_left_out():
    model = network()
    model[0].requires_grad_(False)
    optimizer = optimizers.create("sgd", model)
    assert sum(len(group["params"]) for group in optimizer.param_groups) == 4


def test_errors_name_the_choices():
    with pytest.raises(ConfigError, match=r"did you mean 'adamw'.*choose one of"):
        optimizers.create("adamww", network())
    with pytest.raises(ConfigError, match="unknown option 'betas' for optimizer 'sgd'"):
        optimizers.create("sgd", network(), betas=(0.9, 0.99))
    with pytest.raises(ConfigError, match="optimizer 'sgd'"):
        optimizers.create("sgd", network(), lr=-1.0)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_by_default_on_cuda_only(name):
    model = torch.nn.Linear(3, 2)
    # the parameters are on the CPU here; device= says where they will train (torch accepts fused there too)
    assert optimizers.create(name, model, device="cuda").defaults["fused"] is True
    assert not optimizers.create(name, model).defaults.get("fused")  # on the CPU torch's default is kept
    assert not optimizers.create(name, model, device="cuda", fused=False).defaults[
        "fused"
    ]  # an explicit choice wins
    assert not optimizers.create(name, model, device="cuda", foreach=True).defaults.get("fused")


def test_rmsprop_is_not_fused():
    assert "fused" not in optimizers.create("rmsprop", torch.nn.Linear(3, 2), device="cuda").defaults
