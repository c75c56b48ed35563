"""cadence.keras.CadenceSchedule (torch backend): the LR per step in model.fit, config, graph mode."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from keras_integration.keras_helpers import fit, tiny_model  # noqa: E402

from cadence.keras import CadenceSchedule  # noqa: E402
from cadence.schedules import from_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 120


def _value(tensor) -> float:
    return float(keras.ops.convert_to_numpy(tensor))


@pytest.mark.parametrize(
    "config",
    [
        {"name": "one_cycle", "max_lr": 0.1, "total_steps": STEPS},
        {"name": "cyclic", "base_lr": 1e-3, "max_lr": 6e-3, "step_size_up": 20, "mode": "triangular2"},
    ],
    ids=["one_cycle", "cyclic_triangular2"],
)
def test_lr_per_step_equals_the_cadence_schedule(config) -> None:
    schedule = from_config(config)
    lr = CadenceSchedule(schedule, steps=STEPS)
    # the schedule as Keras sees it in model.fit, over two epochs (the step count carries across epochs)
    record, _ = fit(tiny_model(keras.optimizers.SGD(learning_rate=lr, momentum=0.9)), steps=STEPS, epochs=2)
    expected = np.array([schedule(step) for step in range(STEPS)])
    assert record.steps == list(range(STEPS))
    np.testing.assert_allclose(record.lr, expected, rtol=1e-6, atol=0)  # the table is float32, as Keras' LR
    assert _value(lr(STEPS + 50)) == pytest.approx(expected[-1], rel=1e-6)


def test_config_round_trip_and_bad_input() -> None:
    schedule = from_config({"name": "cosine", "start": 0.1, "end": 0.0, "steps": 50})
    lr = CadenceSchedule(schedule)
    again = CadenceSchedule.from_config(lr.get_config())
    assert again.schedule == schedule
    assert again.steps == 50
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr))
    assert isinstance(restored, CadenceSchedule)
    assert _value(restored(17)) == pytest.approx(schedule(17), rel=1e-6)
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        CadenceSchedule(from_config({"name": "cyclic", "base_lr": 1e-3, "max_lr": 6e-3, "step_size_up": 4}))
    with pytest.raises(TypeError, match="cadence schedule"):
        CadenceSchedule(0.1)


def test_the_lookup_is_one_graph_without_breaks() -> None:
    """What ``jit_compile=True`` needs: the LR traces into one graph (no host sync such as ``.item()``).

    torch.compile's "eager" backend runs the same graph capture as ``model.compile(jit_compile=True)``
    (TorchDynamo, here with ``fullgraph=True``, which fails on any graph break) without compiling kernels,
    so it takes about a second instead of a minute; the full compiled fit is
    ``test_jit_compiled_fit_sees_the_schedule`` (set CADENCE_KERAS_JIT=1).
    """
    torch = pytest.importorskip("torch")
    if keras.backend.backend() != "torch":
        pytest.skip("checks the torch backend's graph capture")
    schedule = from_config({"name": "one_cycle", "max_lr": 0.1, "total_steps": 40})
    compiled = torch.compile(CadenceSchedule(schedule).__call__, backend="eager", fullgraph=True)
    seen = [_value(compiled(torch.tensor(step))) for step in (0, 11, 12, 39, 45)]
    np.testing.assert_allclose(seen, [schedule(step) for step in (0, 11, 12, 39, 39)], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("CADENCE_KERAS_JIT"), reason="about a minute of compiling; set CADENCE_KERAS_JIT=1"
)
def test_jit_compiled_fit_sees_the_schedule() -> None:
    schedule = from_config({"name": "one_cycle", "max_lr": 0.1, "total_steps": 40})
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    optimizer = keras.optimizers.SGD(learning_rate=CadenceSchedule(schedule), momentum=0.9)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=True)
    record, _ = fit(model, steps=40)
    np.testing.assert_allclose(record.lr, [schedule(step) for step in range(40)], rtol=1e-6)
