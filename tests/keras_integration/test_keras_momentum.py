"""cadence.keras.MomentumScheduler (torch backend): momentum / β1 per step, their effect, resume."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from keras_integration.keras_helpers import fit, tiny_model  # noqa: E402

from cadence.keras import CadenceSchedule, MomentumScheduler  # noqa: E402
from cadence.schedules import linear, one_cycle, one_cycle_momentum  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 40


def test_sgd_momentum_per_step_follows_the_schedule() -> None:
    lr, momentum = one_cycle(0.1, total_steps=STEPS), one_cycle_momentum(total_steps=STEPS)
    optimizer = keras.optimizers.SGD(learning_rate=CadenceSchedule(lr), momentum=0.95)
    record, history = fit(
        tiny_model(optimizer), steps=STEPS, epochs=2, callbacks=[MomentumScheduler(momentum)]
    )
    expected = [momentum(step) for step in range(STEPS)]
    assert record.steps == list(range(STEPS))
    np.testing.assert_allclose(record.momentum, expected, rtol=1e-12)
    np.testing.assert_allclose(record.lr, [lr(step) for step in range(STEPS)], rtol=1e-6)
    assert expected[0] == pytest.approx(0.95)
    assert min(expected) == pytest.approx(0.85, abs=1e-3)
    # logged like Keras' LearningRateScheduler logs the LR: the value of each epoch's last step
    assert history.history["momentum"] == pytest.approx([expected[19], expected[39]], rel=1e-12)


def _least_squares(optimizer, callback, steps: int):
    """Full-batch least squares with a bias-free Dense(1): the weights after ``steps`` updates."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")]
    )
    model.compile(optimizer=optimizer, loss="mse")
    generator = np.random.default_rng(1)
    inputs = generator.normal(size=(8, 3)).astype("float32")
    targets = generator.normal(size=(8, 1)).astype("float32")
    model.fit(inputs, targets, batch_size=8, epochs=steps, verbose=0, shuffle=False, callbacks=[callback])
    return (
        keras.ops.convert_to_numpy(model.layers[0].kernel)[:, 0],
        inputs.astype(float),
        targets.astype(float),
    )


def _gradient(weights, inputs, targets):
    return 2.0 / len(inputs) * inputs.T @ (inputs @ weights - targets[:, 0])


def test_the_scheduled_momentum_is_the_one_sgd_uses() -> None:
    """Weights after SGD with a changing momentum equal a hand-written SGD with that momentum sequence."""
    steps, lr = 6, 0.05
    schedule = linear(0.9, 0.1, steps - 1)  # far from the optimizer's own 0.5
    weights, inputs, targets = _least_squares(
        keras.optimizers.SGD(learning_rate=lr, momentum=0.5), MomentumScheduler(schedule), steps
    )
    expected, velocity = np.ones(3), np.zeros(3)
    for step in range(steps):  # Keras' SGD: v = mu · v - lr · g; w = w + v
        velocity = schedule(step) * velocity - lr * _gradient(expected, inputs, targets)
        expected = expected + velocity
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    constant = expected.copy()
    expected, velocity = np.ones(3), np.zeros(3)
    for _ in range(steps):
        velocity = 0.5 * velocity - lr * _gradient(expected, inputs, targets)
        expected = expected + velocity
    assert not np.allclose(constant, expected, rtol=1e-3)  # the schedule made a difference


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_the_scheduled_beta_1_is_the_one_adam_uses(name) -> None:
    steps, lr, beta_2, epsilon = 5, 0.1, 0.999, 1e-7
    schedule = linear(0.5, 0.95, steps - 1)
    optimizer = getattr(keras.optimizers, name)(learning_rate=lr, beta_1=0.9, beta_2=beta_2, epsilon=epsilon)
    if name == "AdamW":
        optimizer.weight_decay = 0.0  # AdamW's decoupled decay is not part of the β1 check
    weights, inputs, targets = _least_squares(optimizer, MomentumScheduler(schedule), steps)
    expected, first, second = np.ones(3), np.zeros(3), np.zeros(3)
    for step in range(steps):  # Keras' Adam, with this step's β1 in the bias correction too
        gradient, beta_1, t = _gradient(expected, inputs, targets), schedule(step), step + 1
        first = beta_1 * first + (1 - beta_1) * gradient
        second = beta_2 * second + (1 - beta_2) * gradient**2
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        expected = expected - alpha * first / (np.sqrt(second) + epsilon)
    # float32 against float64: about 4e-6 apart with a constant β1 too; β1 one step early or late: 0.2
    np.testing.assert_allclose(weights, expected, rtol=0, atol=2e-5)
    assert optimizer.beta_1 == pytest.approx(schedule(steps - 1))


def test_save_load_and_resume_continue_lr_and_momentum(tmp_path) -> None:
    total = 30
    lr, momentum = one_cycle(0.1, total_steps=total), one_cycle_momentum(total_steps=total)
    model = tiny_model(keras.optimizers.SGD(learning_rate=CadenceSchedule(lr), momentum=0.95))
    first, _ = fit(model, steps=12, callbacks=[MomentumScheduler(momentum)])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, CadenceSchedule)
    assert restored.schedule == lr
    assert restored.steps == total
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 12
    # a new callback, as after restarting the program: it keys on the restored iteration count
    second, _ = fit(loaded, steps=18, callbacks=[MomentumScheduler(momentum)])
    assert first.steps + second.steps == list(range(total))
    np.testing.assert_allclose(
        first.momentum + second.momentum, [momentum(s) for s in range(total)], rtol=1e-12
    )
    np.testing.assert_allclose(first.lr + second.lr, [lr(s) for s in range(total)], rtol=1e-6)


def _started(callback, optimizer) -> None:
    model = tiny_model(optimizer)
    callback.set_model(model)
    callback.on_train_begin()


def test_clear_errors() -> None:
    schedule = one_cycle_momentum(total_steps=10)
    with pytest.raises(
        ValueError, match=r"cannot schedule Adagrad.*Allowed: momentum \(SGD, RMSprop\); beta_1 \(Adam, AdamW"
    ):
        _started(MomentumScheduler(schedule), keras.optimizers.Adagrad())
    with pytest.raises(ValueError, match="cannot schedule Adam: it has no 'momentum' attribute"):
        _started(MomentumScheduler(schedule, attribute="momentum"), keras.optimizers.Adam())
    with pytest.raises(ValueError, match=r"created with momentum=0\.0"):
        _started(MomentumScheduler(schedule), keras.optimizers.SGD())
    with pytest.raises(ValueError, match="attribute must be one of momentum, beta_1"):
        MomentumScheduler(schedule, attribute="beta_2")
    with pytest.raises(TypeError, match="cadence schedule"):
        MomentumScheduler(0.9)
    callback = MomentumScheduler(linear(0.9, 1.5, 4))
    _started(callback, keras.optimizers.SGD(momentum=0.9))
    callback.on_train_batch_begin(0)
    assert callback.model.optimizer.momentum == pytest.approx(0.9)
    callback.model.optimizer.iterations.assign(1)
    with pytest.raises(ValueError, match=r"momentum=1\.05 at step 1; it must be in \[0, 1\]"):
        callback.on_train_batch_begin(1)


def test_config_dict_and_loss_scale_optimizer() -> None:
    config = {"name": "one_cycle_momentum", "total_steps": 10}
    callback = MomentumScheduler(config)
    inner = keras.optimizers.Adam()
    _started(callback, keras.optimizers.LossScaleOptimizer(inner))
    callback.on_train_batch_begin(0)
    assert inner.beta_1 == pytest.approx(one_cycle_momentum(total_steps=10)(0))
