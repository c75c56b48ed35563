"""freeze_/unfreeze_: frozen parameters get no gradient and no update, weight decay and momentum included."""

from __future__ import annotations

import pytest
import torch
from transfer_helpers import data, loss_step, stack

from cadence.transfer.freezing import freeze_, set_trainable_, unfreeze_
from cadence.transfer.param_groups import discriminative_lrs, layer_groups


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda groups: torch.optim.AdamW(groups, lr=0.1, weight_decay=0.5),
    ],
    ids=["sgd", "adamw"],
)
def test_frozen_parameters_unchanged_after_steps_with_weight_decay(make_optimizer):
    model = stack()
    inputs, targets = data()
    groups = layer_groups(model)
    optimizer = make_optimizer(discriminative_lrs(groups, factor=1.0))
    loss_step(model, optimizer, inputs, targets)  # momentum / Adam state exists for every parameter
    freeze_(groups[:2])
    named = dict(model.named_parameters())
    frozen = {name: p.detach().clone() for name, p in named.items() if name.startswith(("0.", "1."))}
    trained = {name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("3.")}
    for _ in range(3):
        loss_step(model, optimizer, inputs, targets)
    for name, value in frozen.items():
        parameter = model.get_parameter(name)
        assert torch.equal(parameter, value), name
        assert parameter.grad is None
        assert not parameter.requires_grad
    for name, value in trained.items():
        assert not torch.equal(model.get_parameter(name), value), name


def test_freeze_sets_existing_gradients_to_none():
    model = stack()
    inputs, targets = data()
    torch.nn.functional.cross_entropy(model(inputs), targets).backward()
    freeze_(model[0])
    assert all(p.grad is None for p in model[0].parameters())
    assert all(p.grad is not None for p in model[3].parameters())


def test_train_bn_keeps_normalization_trainable():
    model = stack()
    groups = layer_groups(model)
    freeze_(groups[0], train_bn=True)
    assert not model[0][0].weight.requires_grad
    assert model[0][1].weight.requires_grad
    assert model[0][1].bias.requires_grad
    unfreeze_(groups[0], train_bn=False)
    assert model[0][0].weight.requires_grad
    assert not model[0][1].weight.requires_grad
    unfreeze_(groups[0])
    assert all(p.requires_grad for p in model.parameters())


def test_set_trainable_is_exact():
    model = stack()
    groups = layer_groups(model)
    set_trainable_(groups, [2, 3], train_bn=False)
    assert [all(p.requires_grad for p in g.params) for g in groups] == [False, False, True, True]
    set_trainable_(groups, [0], train_bn=False)
    assert [any(p.requires_grad for p in g.params) for g in groups] == [True, False, False, False]


def test_freeze_accepts_parameters_and_rejects_other_things():
    model = stack()
    freeze_(list(model[3].parameters()))
    assert not any(p.requires_grad for p in model[3].parameters())
    with pytest.raises(TypeError, match="expected layer groups"):
        freeze_([[1, 2]])
