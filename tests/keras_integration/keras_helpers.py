"""Shared by the Keras tests: a tiny model, a fit that records LR and momentum per step."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np


class Record(keras.callbacks.Callback):
    """Before each batch (after the callbacks listed before it): step, LR and momentum/β1."""

    def __init__(self, attribute: str = "momentum") -> None:
        super().__init__()
        self.attribute = attribute
        self.steps: list[int] = []
        self.lr: list[float] = []
        self.momentum: list[float] = []

    def on_train_batch_begin(self, batch, logs=None) -> None:
        optimizer = self.model.optimizer
        self.steps.append(int(keras.ops.convert_to_numpy(optimizer.iterations)))
        self.lr.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        self.momentum.append(float(getattr(optimizer, self.attribute)))


def data(examples: int, features: int = 8, classes: int = 4, seed: int = 0):
    generator = np.random.default_rng(seed)
    inputs = generator.random((examples, features)).astype("float32")
    return inputs, generator.integers(0, classes, examples)


def tiny_model(optimizer, features: int = 8, classes: int = 4) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(classes)])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def fit(model: keras.Model, *, steps: int, epochs: int = 1, callbacks=(), attribute: str = "momentum"):
    """``epochs`` epochs of ``steps // epochs`` batches of 1 example; the :class:`Record` and history."""
    inputs, targets = data(steps // epochs)
    record = Record(attribute)
    history = model.fit(
        inputs, targets, batch_size=1, epochs=epochs, verbose=0, shuffle=False, callbacks=[*callbacks, record]
    )
    return record, history
