import pytest
import torch
from ensembles.ensemble_helpers import CyclicStandIn, make_model, run_loop
from torch import nn

from cadence.callbacks.averaging import EMA, SWA, SWALRSchedule, ema_decay
from cadence.errors import ConfigError


def _tensors_equal(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_ema_math_equals_a_hand_computation():
    model = nn.Linear(2, 1, bias=False)
    callback = EMA(decay=0.9, warmup=True)
    callback.average = callback._make_average(model)
    weights = [1.0, 3.0, -2.0, 5.0]
    expected, decays = None, []
    for n, value in enumerate(weights):
        with torch.no_grad():
            model.weight.fill_(value)
        callback.averaged.update_parameters(model)
        if n == 0:
            expected = value  # the first update copies
        else:
            decay = min(0.9, (1 + n) / (10 + n))
            decays.append(decay)
            expected = decay * expected + (1 - decay) * value
    assert decays == [pytest.approx(2 / 11), pytest.approx(3 / 12), pytest.approx(4 / 13)]
    assert callback.num_averaged == 4
    assert callback.averaged.module.weight[0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert ema_decay(0.9, 1000) == 0.9
    assert ema_decay(0.9, 1, warmup=False) == 0.9


def test_ema_without_warmup_uses_the_fixed_decay():
    model = nn.Linear(1, 1, bias=False)
    callback = EMA(decay=0.5, warmup=False)
    callback.average = callback._make_average(model)
    for value in (4.0, 0.0, 2.0):
        with torch.no_grad():
            model.weight.fill_(value)
        callback.averaged.update_parameters(model)
    assert callback.averaged.module.weight.item() == pytest.approx((4 * 0.5 + 0) * 0.5 + 2 * 0.5)


@pytest.mark.parametrize("make", [lambda: EMA(decay=0.9), lambda: SWA(start=0.5)])
def test_state_round_trips_into_a_fresh_callback(make):
    callback = make()
    _, checkpoint = run_loop(make_model(), [callback], total_steps=16, stop_at=12)
    saved = checkpoint["callbacks"][0]
    fresh = make()
    fresh.load_state_dict(saved)  # before on_fit_start: kept until the model is known
    fresh.on_fit_start(_state_for(make_model(seed=3)))
    assert fresh.num_averaged == callback.num_averaged > 0
    assert _tensors_equal(fresh.averaged.state_dict(), callback.averaged.state_dict())
    again = make()
    again.on_fit_start(_state_for(make_model(seed=4)))
    again.load_state_dict(saved)  # after on_fit_start: loaded at once
    assert _tensors_equal(again.averaged.state_dict(), callback.averaged.state_dict())


def _state_for(model):
    from cadence.train.state import TrainState

    return TrainState(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), total_steps=16, steps_per_epoch=4
    )


@pytest.mark.parametrize("make", [lambda: EMA(decay=0.8), lambda: SWA(start=6, update_every=2)])
def test_resume_averages_exactly_like_a_straight_run(make, tmp_path):
    straight = make()
    run_loop(make_model(), [straight], total_steps=16, run_dir=tmp_path / "a")
    first = make()
    _, checkpoint = run_loop(make_model(), [first], total_steps=16, stop_at=9, run_dir=tmp_path / "b")
    resumed = make()
    run_loop(make_model(seed=7), [resumed], total_steps=16, resume=checkpoint, run_dir=tmp_path / "b")
    assert resumed.num_averaged == straight.num_averaged
    assert _tensors_equal(resumed.averaged.state_dict(), straight.averaged.state_dict())
    name = straight.filename
    assert _tensors_equal(
        torch.load(tmp_path / "a" / name, weights_only=True),
        torch.load(tmp_path / "b" / name, weights_only=True),
    )


def test_swa_counts_from_start_and_reports_metrics(tmp_path):
    callback = SWA(start=0.75)
    state, _ = run_loop(make_model(), [callback], total_steps=16, run_dir=tmp_path)
    assert callback.num_averaged == 4  # steps 12..15
    assert "swa_val_accuracy" in state.metrics
    assert callback.summary()["n_averaged"] == 4
    saved = torch.load(tmp_path / "swa_model.pt", weights_only=True)
    fresh = make_model()
    fresh.load_state_dict(saved)  # a plain state_dict of the architecture
    # update_bn recomputed the batch-norm statistics of the average (they differ from the last model's).
    assert not torch.equal(saved["1.running_mean"], state.model.state_dict()["1.running_mean"])


def test_swa_average_is_the_mean_of_the_visited_weights():
    callback = SWA(start=0)
    model = nn.Linear(1, 1, bias=False)
    callback.average = callback._make_average(model)
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(value)
        callback.averaged.update_parameters(model)
    assert callback.averaged.module.weight.item() == pytest.approx(3.0)


def test_swa_lr_schedule_and_override():
    base = CyclicStandIn(cycle_steps=100, max_lr=0.1)
    schedule = SWALRSchedule(base, start_step=10, swa_lr=0.01, anneal_steps=4, anneal="linear")
    assert schedule(5) == base(5)
    assert schedule(10) == pytest.approx(base(10))
    assert schedule(12) == pytest.approx(0.01 + (base(10) - 0.01) * 0.5)
    assert schedule(14) == schedule(50) == pytest.approx(0.01)
    callback = SWA(start=10, lr=0.01, anneal_steps=0, schedule=base)
    state, _ = run_loop(make_model(), [callback], total_steps=16, schedule=base)
    assert state.hyperparams["lr"] == pytest.approx(0.01)
    assert all(group["lr"] == pytest.approx(0.01) for group in state.optimizer.param_groups)
    with pytest.raises(ConfigError, match="schedule"):
        run_loop(make_model(), [SWA(start=10, lr=0.01)], total_steps=16)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SWA(start=1.5), "start"),
        (lambda: SWA(anneal="step"), "anneal"),
        (lambda: SWA(lr=-1.0), "lr"),
        (lambda: EMA(decay=1.0), "decay"),
        (lambda: EMA(update_every=0), "update_every"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
