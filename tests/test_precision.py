"""Precision: fp32, bf16, fp16; the order unscale -> clip -> step -> update, checked with a fake overflow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.precision import Precision


def _model_and_optimizer():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _loss(model):
    return model(torch.ones(3, 4)).pow(2).mean()


def test_unknown_mode_names_the_choices():
    with pytest.raises(ConfigError, match="fp32, bf16, fp16"):
        Precision("fp8")


def test_fp32_is_a_plain_step_with_clipping():
    model, optimizer = _model_and_optimizer()
    precision = Precision("fp32")
    with precision.autocast():
        loss = _loss(model)
    assert loss.dtype == torch.float32
    precision.backward(loss)
    assert precision.step(optimizer, model.parameters(), grad_clip=1e-3)
    assert precision.scale == 1.0
    assert precision.state_dict() == {"mode": "fp32"}


def test_bf16_autocasts_on_cpu_and_keeps_fp32_weights():
    model, optimizer = _model_and_optimizer()
    precision = Precision("bf16", "cpu")
    with precision.autocast():
        outputs = model(torch.ones(3, 4))
    assert outputs.dtype == torch.bfloat16
    precision.backward(outputs.float().pow(2).mean())
    assert precision.step(optimizer)
    assert model.weight.dtype == torch.float32


def test_fp16_order_scale_unscale_clip_step_update_with_a_fake_overflow(monkeypatch):
    model, optimizer = _model_and_optimizer()
    precision = Precision("fp16", "cpu", init_scale=1024.0)
    events: list[tuple] = []

    real_unscale, real_update = precision.scaler.unscale_, precision.scaler.update
    monkeypatch.setattr(
        precision.scaler, "unscale_", lambda opt: (events.append(("unscale",)), real_unscale(opt))
    )
    monkeypatch.setattr(precision.scaler, "update", lambda: (events.append(("update",)), real_update()))
    real_step = optimizer.step
    monkeypatch.setattr(optimizer, "step", lambda *a, **k: (events.append(("step",)), real_step(*a, **k))[1])
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        events.append(("clip", model.weight.grad.clone()))
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)

    # Reference gradient in fp32, without scaling.
    reference = torch.autograd.grad(_loss(model), model.weight)[0]

    # A clean step: the backward sees loss × 1024, the clip sees the unscaled gradient.
    with precision.autocast():
        loss = _loss(model)
    precision.backward(loss)
    assert torch.allclose(model.weight.grad, reference * 1024, rtol=1e-2)
    before = model.weight.detach().clone()
    assert precision.step(optimizer, model.parameters(), grad_clip=100.0) is True
    assert [event[0] for event in events] == ["unscale", "clip", "step", "update"]
    assert torch.allclose(events[1][1], reference, rtol=1e-2)
    assert not torch.equal(model.weight, before)
    assert precision.scale == 1024.0

    # A fake overflow: an inf gradient. The update is skipped and the scale halves.
    events.clear()
    optimizer.zero_grad()
    with precision.autocast():
        loss = _loss(model)
    precision.backward(loss)
    model.weight.grad[0, 0] = float("inf")
    before = model.weight.detach().clone()
    assert precision.step(optimizer, model.parameters(), grad_clip=100.0) is False
    assert [event[0] for event in events] == ["unscale", "clip", "update"]  # step skipped by the scaler
    assert torch.equal(model.weight, before)
    assert precision.scale == 512.0


def test_fp16_scaler_state_round_trips_and_refuses_another_mode():
    model, optimizer = _model_and_optimizer()
    precision = Precision("fp16", "cpu", init_scale=256.0)
    precision.backward(_loss(model))
    model.weight.grad[0, 0] = float("nan")
    precision.step(optimizer)
    state = precision.state_dict()
    restored = Precision("fp16", "cpu")
    restored.load_state_dict(state)
    assert restored.scale == 128.0
    with pytest.raises(ConfigError, match="precision='fp16'"):
        Precision("bf16").load_state_dict(state)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_autocasts_to_half():
    model = nn.Linear(4, 2).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision("fp16", "cuda")
    with precision.autocast():
        outputs = model(torch.ones(3, 4, device="cuda"))
    assert outputs.dtype == torch.float16
    precision.backward(outputs.float().pow(2).mean())
    assert precision.step(optimizer, model.parameters(), grad_clip=1.0)
