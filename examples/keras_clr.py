"""TensorFlow's cyclical-learning-rate tutorial (Fashion-MNIST, TensorFlow Addons) with ``cadence.keras``.

Part "clr" is the tutorial: its small CNN, plain SGD, batch 64, and a triangular2 cyclical LR between 1e-4
and 1e-2 with a step size of 2 epochs, written with ``Triangular2CyclicalLearningRate`` (TensorFlow Addons'
class name and arguments). Part "one-cycle" trains the same model with a one-cycle LR
(``CadenceSchedule(one_cycle(...))``) and the one-cycle momentum cycled opposite to it on SGD's momentum
(``MomentumScheduler``). Fashion-MNIST comes from ``cadence.data.load`` (Debian's dataset-fashion-mnist
package, ``--data-path``, or the download cache).

    KERAS_BACKEND=torch python examples/keras_clr.py                          # the tutorial, 10 epochs
    python examples/keras_clr.py --subset 512 --test-size 256 --epochs 1     # a quick look
    python examples/keras_clr.py --synthetic --epochs 1                      # random images, no files

Needs ``pip install 'cadence[keras]'``; the backend defaults to torch.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

from cadence.data import load
from cadence.keras import CadenceSchedule, MomentumScheduler, Triangular2CyclicalLearningRate
from cadence.schedules import one_cycle, one_cycle_momentum

PARTS = ("clr", "one-cycle")


class Trace(keras.callbacks.Callback):
    """The LR and momentum each step trains with (listed after any callback that sets them)."""

    def __init__(self) -> None:
        super().__init__()
        self.lr: list[float] = []
        self.momentum: list[float] = []

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        optimizer = self.model.optimizer
        self.lr.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        self.momentum.append(float(optimizer.momentum))


def build_model() -> keras.Model:
    """The tutorial's CNN: Conv 16@5x5 - pool - Conv 32@5x5 - pool - SpatialDropout 0.2 - GAP - 128 - 10."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(2, strides=2),
            keras.layers.Conv2D(32, 5, activation="relu"),
            keras.layers.MaxPooling2D(2, strides=2),
            keras.layers.SpatialDropout2D(0.2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def fashion_mnist(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images as (N, 28, 28, 1) float32 in [0, 1] (channels last, as Keras wants)."""
    if args.synthetic:
        generator = np.random.default_rng(args.seed)
        train, test = args.subset or 512, args.test_size or 256
        images = generator.random((train + test, 28, 28, 1), dtype=np.float32)
        labels = generator.integers(0, 10, train + test)
        return images[:train], labels[:train], images[train:], labels[train:]
    options: dict[str, Any] = {"download": args.download}
    for key in ("path", "subset", "test_size"):
        value = getattr(args, "data_path" if key == "path" else key)
        if value is not None:
            options[key] = value
    data = load("fashion-mnist", **options)
    channels_last = (0, 2, 3, 1)
    return (
        data.train.inputs.numpy().transpose(channels_last),
        data.train.targets.numpy(),
        data.test.inputs.numpy().transpose(channels_last),
        data.test.targets.numpy(),
    )


def train(
    part: str, data: tuple[np.ndarray, ...], args: argparse.Namespace
) -> tuple[keras.callbacks.History, Trace]:
    x_train, y_train, x_test, y_test = data
    callbacks: list[keras.callbacks.Callback] = []
    if part == "clr":
        # as in the tutorial: steps_per_epoch = len(x_train) // BATCH_SIZE, a step size of 2 epochs
        steps_per_epoch = len(x_train) // args.batch_size
        lr = Triangular2CyclicalLearningRate(
            initial_learning_rate=1e-4,
            maximal_learning_rate=1e-2,
            step_size=args.step_size_epochs * steps_per_epoch,
        )
        optimizer = keras.optimizers.SGD(learning_rate=lr)
    else:
        # Keras runs the last partial batch too, so an epoch is ceil(N / batch) optimizer steps
        total_steps = args.epochs * math.ceil(len(x_train) / args.batch_size)
        optimizer = keras.optimizers.SGD(
            learning_rate=CadenceSchedule(one_cycle(max_lr=args.max_lr, total_steps=total_steps)),
            momentum=0.95,  # replaced each step by MomentumScheduler; > 0 so Keras keeps momentum buffers
        )
        callbacks.append(MomentumScheduler(one_cycle_momentum(total_steps=total_steps)))
    keras.utils.set_random_seed(args.seed)
    model = build_model()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trace = Trace()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        callbacks=[*callbacks, trace],
        verbose=args.verbose,
    )
    return history, trace


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "both"], default="both")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--step-size-epochs", type=int, default=2, help="half a CLR cycle, in epochs")
    parser.add_argument("--max-lr", type=float, default=0.05, help="peak LR of the one-cycle part")
    parser.add_argument("--subset", type=int, help="train on this many images (default: all 60000)")
    parser.add_argument("--test-size", type=int, help="evaluate on this many images (default: all 10000)")
    parser.add_argument("--data-path", help="a directory with the four Fashion-MNIST IDX files")
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--verbose", type=int, default=2, help="Keras' fit verbosity (0, 1 or 2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the parts; returns, per part, the per-step LR and momentum and the Keras history."""
    args = parse_args(argv)
    data = fashion_mnist(args)
    results: dict[str, dict[str, Any]] = {}
    for part in PARTS if args.part == "both" else (args.part,):
        history, trace = train(part, data, args)
        results[part] = {"lr": trace.lr, "momentum": trace.momentum, "history": history.history}
        accuracy = history.history["val_accuracy"][-1]
        print(
            f"{part}: {len(trace.lr)} steps, LR {min(trace.lr):.2e}..{max(trace.lr):.2e}, "
            f"momentum {min(trace.momentum):.3f}..{max(trace.momentum):.3f}, test accuracy {accuracy:.4f}"
        )
    return results


if __name__ == "__main__":
    main()
