"""The sweep: LR sequence, smoothing, stopping, param groups, accumulation, data orders, weight decays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.lr_finder import find_lr, planned_lrs
from cadence.lr_finder.sweep import choose_weight_decay
from tests.lr_finder.conftest import make_batches, make_model

cross_entropy = nn.functional.cross_entropy


class SpySGD(torch.optim.SGD):
    """Records every group's lr at each step (the finder must not patch or wrap step; subclassing is ours)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[list[float]] = []

    def step(self, closure=None):
        self.recorded.append([group["lr"] for group in self.param_groups])
        return super().step(closure)


def test_planned_lrs_exponential_and_linear():
    assert planned_lrs(1e-4, 1.0, 5).tolist() == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert planned_lrs(0.1, 0.5, 5, "linear").tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_one_lr_per_step_and_bias_corrected_smoothing(model, batches):
    optimizer = SpySGD(model.parameters(), lr=0.1)
    result = find_lr(
        model,
        optimizer,
        cross_entropy,
        batches,
        start_lr=1e-4,
        end_lr=1e-2,
        num_steps=9,
        smoothing=0.9,
        progress=False,
    )
    assert result.lrs == pytest.approx(planned_lrs(1e-4, 1e-2, 9).tolist())
    assert [lrs[0] for lrs in optimizer.recorded] == pytest.approx(result.lrs)
    average = 0.0
    for index, (loss, smoothed) in enumerate(zip(result.losses, result.smoothed_losses)):
        average = 0.9 * average + 0.1 * loss
        assert smoothed == pytest.approx(average / (1 - 0.9 ** (index + 1)))
    assert result.smoothed_losses[0] == pytest.approx(result.losses[0])  # bias correction: no pull to zero


def test_group_ratios_are_kept_at_every_step(batches):
    model = make_model()
    optimizer = SpySGD(
        [
            {"params": model[0].parameters(), "lr_scale": 1.0},
            {"params": [*model[1].parameters(), *model[4].parameters()], "lr_scale": 0.1},
        ],
        lr=0.1,
        momentum=0.9,
    )
    result = find_lr(model, optimizer, cross_entropy, batches, num_steps=15, progress=False)
    assert len(optimizer.recorded) == len(result.lrs) == 15
    for (first, second), lr in zip(optimizer.recorded, result.lrs):
        assert first == pytest.approx(lr)
        assert second == pytest.approx(lr / 10)
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.1]  # restored


def test_accumulation_gives_one_lr_per_update(model, batches):
    optimizer = SpySGD(model.parameters(), lr=0.1)
    calls = []

    def counting_loss(outputs, targets):
        calls.append(len(targets))
        return cross_entropy(outputs, targets)

    result = find_lr(
        model, optimizer, counting_loss, batches, num_steps=6, accumulation_steps=3, progress=False
    )
    assert len(optimizer.recorded) == 6
    assert len({lrs[0] for lrs in optimizer.recorded}) == 6
    assert len(calls) == 18  # three micro-batches per update
    assert len(result.lrs) == 6


def test_divergence_stops_the_sweep_early():
    torch.manual_seed(0)
    inputs = torch.randn(64, 4)
    data = [(inputs, inputs @ torch.tensor([1.0, -2.0, 0.5, 3.0]))]
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def mse(outputs, targets):
        return nn.functional.mse_loss(outputs.squeeze(1), targets)

    result = find_lr(model, optimizer, mse, data, start_lr=1e-3, end_lr=100.0, num_steps=60, progress=False)
    assert result.stop_reason in ("diverged", "non_finite")
    assert len(result.lrs) < 60
    finite = [s for s in result.smoothed_losses if math.isfinite(s)]
    assert result.stop_reason == "non_finite" or finite[-1] > 4.0 * min(finite)


def test_non_finite_loss_stops_and_suggestions_stay_finite(model, optimizer, batches, tmp_path):
    calls = []

    def loss_with_nan(outputs, targets):
        calls.append(1)
        loss = cross_entropy(outputs, targets)
        return loss * math.nan if len(calls) == 12 else loss

    result = find_lr(model, optimizer, loss_with_nan, batches, num_steps=30, progress=False)
    assert result.stop_reason == "non_finite"
    assert len(result.lrs) == 12
    assert math.isnan(result.losses[-1])
    assert all(math.isfinite(v) and v > 0 for v in result.suggestions.values())
    result.save_json(tmp_path / "result.json")  # strict JSON: the NaN becomes null
    assert "NaN" not in (tmp_path / "result.json").read_text()


def test_validation_mode_records_validation_loss(model, optimizer, batches):
    validation = make_batches(count=2, seed=5)
    calls = {"train": 0, "eval": 0}

    def counting_loss(outputs, targets):
        calls["train" if torch.is_grad_enabled() else "eval"] += 1
        return cross_entropy(outputs, targets)

    result = find_lr(
        model, optimizer, counting_loss, batches, num_steps=5, val_data=validation, progress=False
    )
    assert calls == {"train": 5, "eval": 10}
    assert result.options["val_data"] is True
    assert len(result.losses) == 5


def test_repeats_use_different_data_orders_and_report_spread(model, optimizer, batches):
    result = find_lr(
        model, optimizer, cross_entropy, batches, end_lr=1.0, num_steps=12, repeats=3, progress=False
    )
    assert len(result.curves) == 3
    assert result.curves[0].losses != result.curves[1].losses
    assert result.trust.spread_log10_std is not None
    assert len(result.trust.repeat_values) == 3
    values = [c.suggestions["valley"] for c in result.curves]
    assert result.suggestions["valley"] == pytest.approx(10 ** np.mean(np.log10(values)))
    assert result.lrs == result.curves[0].lrs


def test_tensor_loader_and_data_loader_are_cycled_through(model, optimizer):
    data_module = pytest.importorskip("cadence.data")
    inputs, targets = torch.randn(40, 6), torch.randint(0, 3, (40,))
    loader = data_module.TensorLoader(inputs, targets, batch_size=16, seed=3)  # 3 batches per epoch
    result = find_lr(model, optimizer, cross_entropy, loader, num_steps=10, repeats=2, progress=False)
    assert len(result.curves[0].lrs) == 10
    assert result.curves[0].losses != result.curves[1].losses
    torch_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs, targets), batch_size=16, shuffle=True
    )
    first = find_lr(model, optimizer, cross_entropy, torch_loader, num_steps=8, repeats=2, progress=False)
    second = find_lr(model, optimizer, cross_entropy, torch_loader, num_steps=8, repeats=2, progress=False)
    assert first.curves[0].losses == second.curves[0].losses  # seeded: reproducible
    assert first.curves[0].losses != first.curves[1].losses  # but each repeat reshuffles


def test_one_shot_iterator_is_rejected_when_exhausted(model, optimizer, batches):
    with pytest.raises(ConfigError, match="re-iterable"):
        find_lr(model, optimizer, cross_entropy, iter(batches), num_steps=20, progress=False)


def test_weight_decay_sweep(model, optimizer, batches):
    result = find_lr(
        model,
        optimizer,
        cross_entropy,
        batches,
        end_lr=1.0,
        num_steps=12,
        weight_decays=[0.0, 1e-3, 0.5],
        progress=False,
    )
    assert [c.weight_decay for c in result.curves] == [0.0, 1e-3, 0.5]
    assert [row["weight_decay"] for row in result.weight_decay_summary] == [0.0, 1e-3, 0.5]
    assert result.weight_decay == choose_weight_decay(result.weight_decay_summary)
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4  # restored
    assert "weight_decay" in result.summary()


def test_choose_weight_decay_rule():
    rows = [
        {"weight_decay": 0.0, "min_loss": 1.0, "suggestion": 0.1},
        {"weight_decay": 1e-4, "min_loss": 1.01, "suggestion": 0.3},
        {"weight_decay": 1e-2, "min_loss": 1.5, "suggestion": 1.0},  # largest LR, but a much higher loss
    ]
    assert choose_weight_decay(rows) == 1e-4
    assert choose_weight_decay(rows, tolerance=0.0) == 0.0
    assert choose_weight_decay(rows, tolerance=1.0) == 1e-2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"end_lr": 1e-8}, "end_lr"),
        ({"num_steps": 1}, "num_steps"),
        ({"mode": "log"}, "mode"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"precision": "fp8"}, "precision"),
        ({"repeats": 0}, "repeats"),
        ({"weight_decays": []}, "weight_decays"),
        ({"method": "median"}, "method"),
    ],
)
def test_bad_options_raise_config_error_naming_the_field(model, optimizer, batches, options, field):
    with pytest.raises(ConfigError, match=field):
        find_lr(model, optimizer, cross_entropy, batches, progress=False, **options)


def test_weight_decay_sweep_needs_an_optimizer_with_weight_decay(model, batches):
    class NoDecay(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

        def step(self, closure=None):
            return None

    with pytest.raises(ConfigError, match="weight_decay"):
        find_lr(
            model,
            NoDecay(model.parameters()),
            cross_entropy,
            batches,
            num_steps=3,
            weight_decays=[0.1],
            progress=False,
        )


def test_the_sweep_trains_with_the_trainers_step(model, optimizer, batches, monkeypatch):
    """Label smoothing, gradient clipping and batch callbacks shape each sweep update as in the Trainer."""
    import functools

    from cadence.callbacks import Mixup
    from cadence.lr_finder import find_lr as sweep

    options = {"num_steps": 8, "end_lr": 1.0, "progress": False, "smoothing": 0.0}
    smoothed = sweep(
        model, optimizer, nn.functional.cross_entropy, batches, label_smoothing=0.2, num_classes=3, **options
    )
    reference = sweep(
        model,
        optimizer,
        functools.partial(nn.functional.cross_entropy, label_smoothing=0.2),
        batches,
        **options,
    )
    assert smoothed.losses == pytest.approx(reference.losses, rel=1e-5)  # soft targets == torch's smoothing

    norms = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda p, n, *a, **k: norms.append(n) or clip(p, n)
    )
    sweep(model, optimizer, nn.functional.cross_entropy, batches, grad_clip=0.5, **options)
    assert norms == [0.5] * 8

    mixed = sweep(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches,
        num_classes=3,
        batch_callbacks=[Mixup(alpha=0.4)],
        **options,
    )
    plain = sweep(model, optimizer, nn.functional.cross_entropy, batches, **options)
    assert mixed.losses[0] != pytest.approx(plain.losses[0])
    assert mixed.options["batch_callbacks"] == ["Mixup"]
