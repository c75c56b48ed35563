"""examples/keras_clr.py runs tiny on small Fashion-MNIST-shaped IDX files written here (no download)."""

import math
import os
import runpy
import struct
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from cadence.schedules import one_cycle, one_cycle_momentum  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "keras_clr.py"


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_dir(tmp_path) -> Path:
    """The four IDX files with 128 training and 64 test images of random pixels."""
    generator = np.random.default_rng(0)
    for split, size in (("train", 128), ("t10k", 64)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", generator.integers(0, 256, (size, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", generator.integers(0, 10, size))
    return tmp_path


def test_the_example_runs_tiny_with_the_tutorial_schedules(fashion_dir, capsys) -> None:
    main = runpy.run_path(str(EXAMPLE), run_name="keras_clr")["main"]
    arguments = ["--data-path", str(fashion_dir), "--no-download", "--epochs", "3", "--batch-size", "32"]
    results = main([*arguments, "--step-size-epochs", "1", "--verbose", "0"])
    # clr: triangular2 from 1e-4 to 1e-2 over 4 steps (128 // 32) and back, then half as high
    cycle = [1 - abs(step / 4 - 1) for step in range(8)]
    expected = [1e-4 + (1e-2 - 1e-4) * wave for wave in cycle + [wave / 2 for wave in cycle[:4]]]
    np.testing.assert_allclose(results["clr"]["lr"], expected, rtol=1e-5)
    assert results["clr"]["momentum"] == [0.0] * 12  # the tutorial's plain SGD
    # one-cycle: LR and the SGD momentum cycled opposite to it, step by step
    lr, momentum = one_cycle(max_lr=0.05, total_steps=12), one_cycle_momentum(total_steps=12)
    np.testing.assert_allclose(results["one-cycle"]["lr"], [lr(step) for step in range(12)], rtol=1e-6)
    np.testing.assert_allclose(results["one-cycle"]["momentum"], [momentum(step) for step in range(12)])
    for part in ("clr", "one-cycle"):
        history = results[part]["history"]
        assert len(history["val_accuracy"]) == 3
        assert all(math.isfinite(loss) for loss in history["loss"])
        assert all(0.0 <= accuracy <= 1.0 for accuracy in history["val_accuracy"])
    out = capsys.readouterr().out
    assert "clr: 12 steps, LR 1.00e-04..1.00e-02, momentum 0.000..0.000" in out
    assert "one-cycle: 12 steps, LR 2.00e-07..4.97e-02, momentum 0.851..0.950" in out


def test_the_example_says_which_path_lacks_the_files(tmp_path) -> None:
    main = runpy.run_path(str(EXAMPLE), run_name="keras_clr")["main"]
    with pytest.raises(ValueError, match="does not hold fashion-mnist"):
        main(["--data-path", str(tmp_path), "--no-download", "--epochs", "1"])
