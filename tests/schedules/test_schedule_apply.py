"""Applying schedules: set_hyperparams on common optimizers, and the LRScheduler adapter's exact resume."""

from __future__ import annotations

import pytest
import torch

from cadence.hyperparams import set_hyperparams
from cadence.schedules import LRSchedulerAdapter, cyclic, one_cycle, warmup_cosine

OPTIMIZERS = {
    "sgd": lambda groups: torch.optim.SGD(groups, lr=1.0, momentum=0.9, weight_decay=1e-4),
    "rmsprop": lambda groups: torch.optim.RMSprop(groups, lr=1.0, momentum=0.9, weight_decay=1e-4),
    "adam": lambda groups: torch.optim.Adam(groups, lr=1.0, weight_decay=1e-4),
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=1.0, weight_decay=1e-2),
}
SCALES = (1.0, 0.1, 0.01)


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 1)
    )


def _groups(model: torch.nn.Sequential) -> list[dict]:
    layers = [model[0], model[2], model[3]]
    return [{"params": list(layer.parameters()), "lr_scale": scale} for layer, scale in zip(layers, SCALES)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_set_hyperparams_writes_scaled_lr_and_momentum(name: str) -> None:
    optimizer = OPTIMIZERS[name](_groups(_model()))
    lr = one_cycle(0.5, 100)
    momentum = lr.momentum(0.85, 0.95)
    for step in (0, 29, 64, 99, 150):
        applied = set_hyperparams(optimizer, step, lr=lr, momentum=momentum, weight_decay=5e-4)
        assert applied == {"lr": lr(step), "momentum": momentum(step), "weight_decay": 5e-4}
        for group, scale in zip(optimizer.param_groups, SCALES):
            assert group["lr"] == pytest.approx(lr(step) * scale, rel=1e-15)
            written = group["momentum"] if name in ("sgd", "rmsprop") else group["betas"][0]
            assert written == momentum(step)
            assert group["weight_decay"] == 5e-4
            if name.startswith("adam"):
                assert group["betas"][1] == 0.999


def test_an_optimizer_without_momentum_gets_a_clear_error() -> None:
    optimizer = torch.optim.Adagrad(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no momentum to schedule"):
        set_hyperparams(optimizer, 0, momentum=cyclic(0.01, 0.1, 10).momentum())


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, 4, generator=generator), torch.randn(16, 1, generator=generator))
        for _ in range(count)
    ]


def _train(model, optimizer, scheduler, batches) -> list[float]:
    lrs = []
    for inputs, targets in batches:
        lrs.append(optimizer.param_groups[0]["lr"])
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return lrs


def _setup():
    model = _model()
    optimizer = torch.optim.SGD(_groups(model), lr=0.1, momentum=0.9, nesterov=True)
    lr = one_cycle(0.2, 40, pct_start=0.25)
    scheduler = LRSchedulerAdapter(optimizer, lr=lr, momentum=lr.momentum())
    return model, optimizer, scheduler


def test_adapter_resumes_exactly(tmp_path) -> None:
    batches = _batches(40)
    straight_model, optimizer, scheduler = _setup()
    straight = _train(straight_model, optimizer, scheduler, batches)

    model, optimizer, scheduler = _setup()
    first = _train(model, optimizer, scheduler, batches[:15])
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
        tmp_path / "checkpoint.pt",
    )
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    resumed_model, resumed_optimizer, resumed_scheduler = _setup()
    resumed_model.load_state_dict(checkpoint["model"])
    resumed_scheduler.load_state_dict(checkpoint["scheduler"])  # either order works
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    rest = _train(resumed_model, resumed_optimizer, resumed_scheduler, batches[15:])

    assert first + rest == straight
    for expected, actual in zip(straight_model.parameters(), resumed_model.parameters()):
        assert torch.equal(expected, actual)
    assert resumed_scheduler.state_dict() == {"last_epoch": 40}


def test_adapter_matches_torch_one_cycle_and_is_an_lr_scheduler() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    torch_optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    reference = torch.optim.lr_scheduler.OneCycleLR(torch_optimizer, max_lr=0.3, total_steps=300)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    schedule = one_cycle(0.3, 300)
    adapter = LRSchedulerAdapter(optimizer, lr=schedule, momentum=schedule.momentum())
    assert isinstance(adapter, torch.optim.lr_scheduler.LRScheduler)
    for _ in range(299):
        assert adapter.get_last_lr() == pytest.approx(reference.get_last_lr(), rel=1e-9)
        assert optimizer.param_groups[0]["momentum"] == pytest.approx(
            torch_optimizer.param_groups[0]["momentum"], rel=1e-9
        )
        torch_optimizer.step()
        optimizer.step()
        reference.step()
        adapter.step()
    adapter.step()  # one past the end: torch would raise here; the adapter holds the final value
    assert adapter.get_last_lr() == [schedule(299)]
    assert "initial_lr" not in optimizer.param_groups[0]


def test_adapter_arguments() -> None:
    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="give at least one of lr, momentum, weight_decay"):
        LRSchedulerAdapter(optimizer)
    adapter = LRSchedulerAdapter(optimizer, lr=warmup_cosine(1.0, 110, 10), last_step=4)
    assert adapter.last_epoch == 5
    assert adapter.get_last_lr() == [0.5]
    adapter.step(10)
    assert adapter.get_last_lr() == [1.0]
