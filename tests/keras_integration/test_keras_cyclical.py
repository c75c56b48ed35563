"""cadence.keras's TensorFlow Addons drop-ins: values, cadence's cyclic modes, config, saving, graph mode."""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from keras_integration.keras_helpers import fit, tiny_model  # noqa: E402

from cadence.keras import (  # noqa: E402
    CyclicalLearningRate,
    ExponentialCyclicalLearningRate,
    Triangular2CyclicalLearningRate,
    TriangularCyclicalLearningRate,
)
from cadence.schedules import cyclic  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = np.arange(1200)
LOW, HIGH = 1e-4, 1e-2


def tfa_formula(step: int, low: float, high: float, step_size: float, scale_fn, scale_mode: str) -> float:
    """TensorFlow Addons' CyclicalLearningRate, written out in float64 from its documented formula."""
    cycle = math.floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    return low + (high - low) * max(0.0, 1 - x) * scale_fn(cycle if scale_mode == "cycle" else step)


def values(schedule, steps=STEPS) -> np.ndarray:
    return keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(steps))).astype(float)


CASES = [
    (TriangularCyclicalLearningRate, {}, lambda x: 1.0),
    (TriangularCyclicalLearningRate, {"scale_mode": "iterations"}, lambda x: 1.0),
    (Triangular2CyclicalLearningRate, {}, lambda x: 0.5 ** (x - 1)),
    (Triangular2CyclicalLearningRate, {"scale_mode": "iterations"}, lambda x: 0.5 ** (x - 1)),
    (ExponentialCyclicalLearningRate, {"gamma": 0.998}, lambda x: 0.998**x),
    (ExponentialCyclicalLearningRate, {"gamma": 0.9, "scale_mode": "cycle"}, lambda x: 0.9**x),
]


IDS = ["triangular", "triangular-iterations", "triangular2", "triangular2-iterations", "exp", "exp-cycle"]


@pytest.mark.parametrize(("cls", "options", "scale_fn"), CASES, ids=IDS)
@pytest.mark.parametrize("step_size", [100, 37.5])
def test_values_equal_the_tfa_formula(cls, options, scale_fn, step_size) -> None:
    schedule = cls(LOW, HIGH, step_size, **options)
    mode = options.get("scale_mode", "iterations" if cls is ExponentialCyclicalLearningRate else "cycle")
    expected = [tfa_formula(int(step), LOW, HIGH, step_size, scale_fn, mode) for step in STEPS]
    np.testing.assert_allclose(values(schedule), expected, rtol=2e-5, atol=1e-9)
    assert values(schedule, [0])[0] == pytest.approx(LOW, rel=1e-6)  # every cycle starts at the low LR


def test_custom_scale_fn_in_both_modes() -> None:
    def scale_fn(x):
        return 1.0 / (1.0 + 0.01 * x)

    for mode in ("cycle", "iterations"):
        schedule = CyclicalLearningRate(LOW, HIGH, 50, scale_fn, scale_mode=mode)
        expected = [tfa_formula(int(step), LOW, HIGH, 50, scale_fn, mode) for step in STEPS]
        np.testing.assert_allclose(values(schedule), expected, rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize(
    ("schedule", "mode"),
    [
        (TriangularCyclicalLearningRate(LOW, HIGH, 120), {"mode": "triangular"}),
        (Triangular2CyclicalLearningRate(LOW, HIGH, 120), {"mode": "triangular2"}),
        (ExponentialCyclicalLearningRate(LOW, HIGH, 120, gamma=0.999), {"mode": "exp_range", "gamma": 0.999}),
    ],
    ids=["triangular", "triangular2", "exp_range"],
)
def test_equal_to_cadence_cyclic(schedule, mode) -> None:
    reference = cyclic(base_lr=LOW, max_lr=HIGH, step_size_up=120, **mode)
    np.testing.assert_allclose(
        values(schedule), [reference(int(step)) for step in STEPS], rtol=2e-5, atol=1e-9
    )


def test_config_round_trip() -> None:
    for schedule in (
        TriangularCyclicalLearningRate(LOW, HIGH, 20, scale_mode="iterations", name="clr"),
        Triangular2CyclicalLearningRate(LOW, HIGH, 20),
        ExponentialCyclicalLearningRate(LOW, HIGH, 20, gamma=0.99),
    ):
        config = schedule.get_config()
        again = type(schedule).from_config(config)
        assert again.get_config() == config
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
        assert type(restored) is type(schedule)
        np.testing.assert_allclose(values(restored), values(schedule), rtol=0)
    # the config TensorFlow Addons wrote (no name) loads too
    tfa_config = {
        "initial_learning_rate": LOW,
        "maximal_learning_rate": HIGH,
        "step_size": 20,
        "scale_mode": "cycle",
    }
    np.testing.assert_allclose(
        values(Triangular2CyclicalLearningRate.from_config(tfa_config)),
        values(Triangular2CyclicalLearningRate(LOW, HIGH, 20)),
        rtol=0,
    )
    assert ExponentialCyclicalLearningRate(LOW, HIGH, 20, gamma=0.99).get_config() == {
        "initial_learning_rate": LOW,
        "maximal_learning_rate": HIGH,
        "step_size": 20.0,
        "scale_mode": "iterations",
        "gamma": 0.99,
        "name": "ExponentialCyclicalLearningRate",
    }


@keras.saving.register_keras_serializable(package="cadence_tests")
def halving(x):
    return 0.5**x


def test_a_registered_scale_fn_saves_and_a_lambda_says_why_not() -> None:
    schedule = CyclicalLearningRate(LOW, HIGH, 20, halving)
    restored = CyclicalLearningRate.from_config(schedule.get_config())
    assert restored.scale_fn is halving
    np.testing.assert_allclose(values(restored), values(schedule), rtol=0)
    with pytest.raises(
        TypeError, match=r"cannot be saved with scale_fn=<function .*<lambda>.*register_keras_serializable"
    ):
        CyclicalLearningRate(LOW, HIGH, 20, lambda x: 1.0).get_config()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scale_mode must be one of cycle, iterations"):
        TriangularCyclicalLearningRate(LOW, HIGH, 20, scale_mode="step")
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        TriangularCyclicalLearningRate(LOW, HIGH, 0)
    with pytest.raises(TypeError, match="scale_fn must be a callable"):
        CyclicalLearningRate(LOW, HIGH, 20, 1.0)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        ExponentialCyclicalLearningRate(LOW, HIGH, 20, gamma=-1.0)


def test_in_model_fit_and_saved_with_the_model(tmp_path) -> None:
    schedule = Triangular2CyclicalLearningRate(LOW, HIGH, step_size=5)
    model = tiny_model(keras.optimizers.SGD(learning_rate=schedule))
    record, _ = fit(model, steps=30)
    expected = [tfa_formula(step, LOW, HIGH, 5, lambda x: 0.5 ** (x - 1), "cycle") for step in range(30)]
    np.testing.assert_allclose(record.lr, expected, rtol=2e-5)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras").optimizer._learning_rate
    assert isinstance(restored, Triangular2CyclicalLearningRate)
    assert restored.get_config() == schedule.get_config()


def test_one_graph_without_breaks() -> None:
    torch = pytest.importorskip("torch")
    if keras.backend.backend() != "torch":
        pytest.skip("checks the torch backend's graph capture")
    schedule = ExponentialCyclicalLearningRate(LOW, HIGH, 10, gamma=0.99)
    compiled = torch.compile(schedule.__call__, backend="eager", fullgraph=True)
    seen = [float(compiled(torch.tensor(step))) for step in (0, 10, 25)]
    np.testing.assert_allclose(seen, values(schedule, [0, 10, 25]), rtol=1e-6)
