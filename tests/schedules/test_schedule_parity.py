"""Parity of the recipes with torch's schedulers (and the TensorFlow Addons CLR formula), step by step."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from cadence.schedules import cosine_restarts, cyclic, cyclic_momentum, one_cycle, one_cycle_momentum

STEPS = 5000


def _optimizer(kind: str = "sgd") -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1))]
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.1)
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def _torch_values(scheduler_factory, steps: int, kind: str = "sgd") -> tuple[list[float], list[float]]:
    """LR and momentum torch writes for updates 0 .. steps-1 (torch applies step 0 at construction)."""
    optimizer = _optimizer(kind)
    scheduler = scheduler_factory(optimizer)
    lrs, momenta = [], []
    for step in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["momentum"] if kind == "sgd" else group["betas"][0])
        if step < steps - 1:
            with warnings.catch_warnings():  # no optimizer.step() here: the values do not depend on it
                warnings.simplefilter("ignore", UserWarning)
                scheduler.step()
    return lrs, momenta


def _assert_close(ours: list[float], reference: list[float]) -> None:
    assert len(ours) == len(reference)
    for step, (mine, theirs) in enumerate(zip(ours, reference)):
        assert math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-15), (step, mine, theirs)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize(("total_steps", "pct_start"), [(STEPS, 0.3), (5003, 0.25)])
def test_one_cycle_equals_torch(anneal: str, three_phase: bool, total_steps: int, pct_start: float) -> None:
    options = {"pct_start": pct_start, "three_phase": three_phase}
    kind = "adam" if three_phase else "sgd"  # momentum goes to beta1 for Adam; both must match
    lrs, momenta = _torch_values(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=0.3,
            total_steps=total_steps,
            anneal_strategy=anneal,
            div_factor=20.0,
            final_div_factor=300.0,
            base_momentum=0.8,
            max_momentum=0.95,
            **options,
        ),
        total_steps,
        kind,
    )
    lr = one_cycle(0.3, total_steps, div_factor=20.0, final_div_factor=300.0, anneal=anneal, **options)
    momentum = one_cycle_momentum(total_steps, base_momentum=0.8, max_momentum=0.95, anneal=anneal, **options)
    _assert_close([lr(step) for step in range(total_steps)], lrs)
    _assert_close([momentum(step) for step in range(total_steps)], momenta)
    assert lr.momentum(0.8, 0.95) == momentum
    # torch raises one step past the end; we hold the final value
    assert lr(total_steps + 10) == lr(total_steps - 1)
    assert momentum(10 * total_steps) == momentum(total_steps - 1)


def _halve_per_cycle(x: float) -> float:
    return 1 / 2.0 ** (x - 1)


def _decay_per_iteration(x: float) -> float:
    return 0.9997**x


CYCLIC_CASES = [
    {"mode": "triangular"},
    {"mode": "triangular2"},
    {"mode": "exp_range", "gamma": 0.9995},
    {"scale_fn": _halve_per_cycle, "scale_mode": "cycle"},
    {"scale_fn": _decay_per_iteration, "scale_mode": "iterations"},
]


@pytest.mark.parametrize(
    "options", CYCLIC_CASES, ids=lambda case: str(case.get("mode", case.get("scale_mode")))
)
@pytest.mark.parametrize("step_size_down", [None, 300])
def test_cyclic_equals_torch_including_momentum(options: dict, step_size_down: int | None) -> None:
    lrs, momenta = _torch_values(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt,
            base_lr=0.01,
            max_lr=0.1,
            step_size_up=500,
            step_size_down=step_size_down,
            cycle_momentum=True,
            base_momentum=0.8,
            max_momentum=0.9,
            **options,
        ),
        STEPS,
    )
    lr = cyclic(0.01, 0.1, 500, step_size_down=step_size_down, **options)
    momentum = cyclic_momentum(
        500, base_momentum=0.8, max_momentum=0.9, step_size_down=step_size_down, **options
    )
    _assert_close([lr(step) for step in range(STEPS)], lrs)
    _assert_close([momentum(step) for step in range(STEPS)], momenta)
    assert lr.momentum(0.8, 0.9) == momentum


def test_cyclic_momentum_goes_to_beta1_like_torch() -> None:
    _, betas = _torch_values(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt,
            base_lr=0.001,
            max_lr=0.006,
            step_size_up=200,
            mode="triangular2",
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        1200,
        "adam",
    )
    momentum = cyclic(0.001, 0.006, 200, mode="triangular2").momentum(0.85, 0.95)
    _assert_close([momentum(step) for step in range(1200)], betas)


def _tfa_cyclical_learning_rate(
    step: int, initial: float, maximal: float, step_size: int, scale_fn, scale_mode
):
    """TensorFlow Addons' CyclicalLearningRate, written from its definition."""
    cycle = math.floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    mode_step = cycle if scale_mode == "cycle" else step
    return initial + (maximal - initial) * max(0.0, 1 - x) * scale_fn(mode_step)


@pytest.mark.parametrize(
    ("scale_fn", "scale_mode", "options"),
    [
        (lambda x: 1.0, "cycle", {"mode": "triangular"}),
        (lambda x: 1 / 2.0 ** (x - 1), "cycle", {"mode": "triangular2"}),
        (lambda x: 0.9996**x, "iterations", {"mode": "exp_range", "gamma": 0.9996}),
        (lambda x: 1 / 2.0 ** (x - 1), "cycle", {"scale_fn": _halve_per_cycle}),
    ],
)
def test_cyclic_equals_tensorflow_addons_formula(scale_fn, scale_mode: str, options: dict) -> None:
    schedule = cyclic(1e-4, 1e-2, 250, **options)
    reference = [
        _tfa_cyclical_learning_rate(step, 1e-4, 1e-2, 250, scale_fn, scale_mode) for step in range(STEPS)
    ]
    _assert_close([schedule(step) for step in range(STEPS)], reference)


@pytest.mark.parametrize("cycle_mult", [1, 2, 3])
def test_cosine_restarts_equals_torch(cycle_mult: int) -> None:
    lrs, _ = _torch_values(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, T_0=300, T_mult=cycle_mult, eta_min=1e-3
        ),
        STEPS,
    )
    schedule = cosine_restarts(0.1, 300, cycle_mult=cycle_mult, min_lr=1e-3)
    _assert_close([schedule(step) for step in range(STEPS)], lrs)
    restarts = [step + 1 for step in range(STEPS - 1) if lrs[step + 1] > lrs[step]]
    assert schedule.cycle_ends(STEPS) == [step - 1 for step in restarts]
