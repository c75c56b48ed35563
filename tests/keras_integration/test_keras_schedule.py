"""cadence.keras with the torch backend: the LR per step in model.fit, save/load, graph mode."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from cadence.keras import CadenceSchedule  # noqa: E402
from cadence.schedules import from_config  # noqa: E402

STEPS = 300


class RecordLR(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def on_train_batch_begin(self, batch, logs=None) -> None:
        value = self.model.optimizer.learning_rate
        self.values.append(float(keras.ops.convert_to_numpy(value)))


def _fit(schedule, *, epochs: int, jit_compile: bool = False):
    steps = epochs * 10  # 160 examples, batches of 16
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    optimizer = keras.optimizers.SGD(learning_rate=CadenceSchedule(schedule, steps=steps), momentum=0.9)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    generator = np.random.default_rng(0)
    inputs = generator.random((160, 8)).astype("float32")
    targets = generator.integers(0, 4, 160)
    record = RecordLR()
    model.fit(inputs, targets, batch_size=16, epochs=epochs, verbose=0, shuffle=False, callbacks=[record])
    return model, record.values


@pytest.mark.parametrize(
    "config",
    [
        {"name": "one_cycle", "max_lr": 0.1, "total_steps": STEPS},
        {"name": "cyclic", "base_lr": 1e-3, "max_lr": 6e-3, "step_size_up": 40, "mode": "triangular2"},
    ],
    ids=["one_cycle", "cyclic_triangular2"],
)
def test_lr_per_step_equals_the_cadence_schedule(config) -> None:
    schedule = from_config(config)
    lr = CadenceSchedule(schedule, steps=STEPS)
    # the schedule as a pure function of the step, and as Keras sees it in model.fit (10 steps per epoch)
    _, seen = _fit(schedule, epochs=STEPS // 10)
    expected = np.array([schedule(step) for step in range(STEPS)])
    assert len(seen) == STEPS
    np.testing.assert_allclose(seen, expected, rtol=1e-6, atol=0)  # the table is float32, as Keras' LR
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(lr(STEPS + 50))), expected[-1], rtol=1e-6)


def test_save_and_load_keep_the_schedule(tmp_path) -> None:
    schedule = from_config({"name": "one_cycle", "max_lr": 0.1, "total_steps": STEPS})
    model, _ = _fit(schedule, epochs=2)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, CadenceSchedule)
    assert restored.schedule == schedule
    assert restored.steps == 20
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 20
    for step in (0, 7, 19):
        value = float(keras.ops.convert_to_numpy(restored(step)))
        assert value == pytest.approx(schedule(step), rel=1e-6)


def test_config_round_trip_and_bad_input() -> None:
    schedule = from_config({"name": "cosine", "start": 0.1, "end": 0.0, "steps": 50})
    lr = CadenceSchedule(schedule)
    again = CadenceSchedule.from_config(lr.get_config())
    assert again.schedule == schedule
    assert again.steps == 50
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        CadenceSchedule(from_config({"name": "cyclic", "base_lr": 1e-3, "max_lr": 6e-3, "step_size_up": 4}))
    with pytest.raises(TypeError, match="cadence schedule"):
        CadenceSchedule(0.1)


def test_jit_compile_does_not_break_the_step() -> None:
    schedule = from_config({"name": "one_cycle", "max_lr": 0.1, "total_steps": 40})
    _, seen = _fit(schedule, epochs=4, jit_compile=True)
    np.testing.assert_allclose(seen, [schedule(step) for step in range(40)], rtol=1e-6)
