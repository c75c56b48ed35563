"""The benchmark scripts' fast modes run to the end and print their tables.

Each script runs in its own process, as documented (``python benchmarks/NAME.py``), from the repository
root with one OpenMP thread; output files go to a temporary directory, never to benchmarks/results/.
Only scripts that run offline on MNIST-1D or on data they make up are covered. Not covered:
``lr_finder_auto.py``, ``config_mnist1d_one_cycle.py`` and ``distributed_throughput.py`` (no mode fast
enough for a test), and the
scripts that need Fashion-MNIST files: ``time_to_accuracy_fashion.py`` (its ``--smoke`` mode takes over
20 s on a 2-core CPU: three ``cadence compare`` runs, each in its own process), ``freezeout.py`` and
``transfer.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> str:
    """Run ``benchmarks/NAME`` with ``args``; assert it exits with 0 and return its stdout and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, f"benchmarks/{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_time_to_accuracy_mnist1d_smoke(tmp_path: Path) -> None:
    output = run_script("time_to_accuracy_mnist1d.py", "--smoke", "--out", str(tmp_path / "tta"))
    assert "## MNIST-1D: reference recipe vs one-cycle with an automatic LR" in output
    assert "| reference: Adam 1e-2 constant | 40 | 1/1 |" in output
    assert "| one_cycle, max_lr=auto | 40 | 1/1 |" in output


@pytest.mark.slow
def test_ensembles_quick(tmp_path: Path) -> None:
    report = tmp_path / "ensembles.md"
    output = run_script("ensembles.py", "--quick", "--datasets", "mnist1d", "--output", str(report))
    assert "| method | test accuracy % | test NLL | test ECE % |" in output
    for label in ("M = 3: snapshot ensemble", "M = 5: snapshot ensemble", "M = 5: a snapshot alone"):
        assert f"| {label}" in output
    assert "Convergence check, M = 5" in output
    assert report.read_text().startswith("# Snapshot ensembles, SWA and EMA")
    assert report.with_suffix(".json").exists()


@pytest.mark.slow
def test_regularization_effects_quick(tmp_path: Path) -> None:
    report = tmp_path / "regularization_effects.md"
    output = run_script(
        "regularization_effects.py", "--quick", "--datasets", "mnist1d", "--output", str(report)
    )
    assert "| targets | test accuracy % (mean ± std) | test NLL | test ECE % |" in output
    for variant in ("none", "label smoothing 0.1", "mixup 0.2"):
        assert f"| {variant} | " in output
    assert report.read_text().startswith("# Label smoothing and mixup vs none")


@pytest.mark.slow
def test_trainer_overhead_small() -> None:
    # No flag for a quick run: one seed, one repeat, one epoch on 400 examples; nothing is written.
    output = run_script(
        "trainer_overhead.py", "--seeds", "1", "--repeats", "1", "--epochs", "1", "--train-size", "400"
    )
    assert "step ratio Trainer(bare) / hand:" in output
    assert "final parameters identical to the hand loop: True" in output


@pytest.mark.slow
def test_gpu_check_smoke_on_the_cpu(tmp_path: Path) -> None:
    import json

    output = run_script("gpu_check.py", "--smoke", "--out", str(tmp_path / "gpu"))
    record = json.loads((tmp_path / "gpu" / "results.json").read_text())
    settings = [(row["workload"], row["setting"]) for row in record["rows"]]
    assert settings == [
        ("resnet20", "fp32"),
        ("resnet20", "bf16"),
        ("resnet20", "bf16 + channels_last"),
        ("transformer", "fp32"),
        ("transformer", "bf16"),
    ]
    for row in record["rows"]:
        assert row["flops_per_step"] > 0
        assert row["plain_rate"] > 0
        assert row["trainer_rate"] > 0
        assert row["ratio"] == pytest.approx(row["trainer_seconds_per_step"] / row["plain_seconds_per_step"])
        assert row["mfu"] is None
        assert row["syncs"] is None
    assert "| transformer | bf16 |" in output


@pytest.mark.slow
def test_compile_freezing_short_run() -> None:
    # aot_eager: the same graphs and guards as inductor, without its code generation
    output = run_script("compile_freezing.py", "--repeats", "1", "--steps", "24", "--backend", "aot_eager")
    assert "| compiled, requires_grad | 8 | 1/1 |" in output  # a graph per stage, up to the limit
    assert "| compiled | 2 | 0/1 |" in output  # training and evaluation


@pytest.mark.slow
def test_super_convergence_smoke(tmp_path: Path) -> None:
    output = run_script("super_convergence.py", "--smoke", "--out", str(tmp_path / "sc"))
    assert "| budget (steps) | × reference |" in output
    assert "| 40 | 0.50 |" in output
    assert "| 80 | 1.00 |" in output
