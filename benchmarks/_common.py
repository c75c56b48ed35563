"""Pieces shared by the benchmark scripts: statistics, report headers and the ``cadence compare`` driver.

The scripts run as ``python benchmarks/NAME.py`` and import this module from their own directory.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def start(threads: int = 1) -> tuple[str, float]:
    """Set the torch thread count; return the UTC start (``YYYY-MM-DD HH:MM``) and a perf_counter stamp."""
    torch.set_num_threads(threads)
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), time.perf_counter()


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def format_mean_std(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std`` of ``values`` times ``scale`` (percent by default)."""
    mean, std = mean_std(values)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def report_header(script: str, started: str, wall: float, quick: bool) -> list[str]:
    """The date/machine and command lines at the top of a markdown report."""
    return [
        f"- date: {started} (UTC); machine: 2-core CPU shared with other jobs, no GPU "
        f"(torch {torch.__version__}, Python {platform.python_version()}, 1 thread); "
        f"wall time {wall / 60:.1f} min",
        f"- command: `python benchmarks/{script}" + (" --quick" if quick else "") + "`",
    ]


def machine() -> str:
    return f"2-core CPU ({platform.processor() or platform.machine()}), no GPU; shared with other jobs"


def run_compare(
    configs: list[str],
    *,
    seeds: int,
    jobs: int,
    out: Path,
    target: str,
    overrides: list[str],
    report_only: bool = False,
) -> dict:
    """Run ``cadence compare`` (skipping finished runs) and return its results.json.

    ``report_only`` reads the run directories already under ``out/runs`` (unfinished runs show as such).
    """
    command = [sys.executable, "-m", "cadence", "compare"]
    if report_only:
        stems = [Path(config).stem for config in configs]
        command += ["--runs", *[str(out / "runs" / stem) for stem in stems if (out / "runs" / stem).exists()]]
    else:
        command += [*configs, "--seeds", str(seeds), "--jobs", str(jobs)]
        for override in overrides:
            command += ["--set", override]
    command += ["--target", target, "--out", str(out)]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=False)
    return json.loads((out / "results.json").read_text())


def cell(summary: dict[str, Any] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not summary or not summary.get("n") or summary.get("mean") is None:
        return "—"
    if summary["n"] == 1:
        return f"{summary['mean'] * scale:.{digits}f}"
    return f"{summary['mean'] * scale:.{digits}f} ± {summary['std'] * scale:.{digits}f}"


def replace_section(path: Path, key: str, body: str, title: str) -> None:
    """Write ``body`` between ``<!-- key:start -->`` and ``<!-- key:end -->`` in ``path`` (kept elsewhere)."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else f"# {title}\n\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def report_markdown(out: Path) -> str:
    """The compare report's tables (report.md without its title line and plots)."""
    lines = (out / "report.md").read_text().splitlines()
    kept = [line for line in lines[1:] if not line.startswith("![")]
    text = "\n".join(kept)
    return text.split("## Plots")[0].rstrip()


def publish_time_to_accuracy(key: str, body: str, seed_section: str, out: Path, smoke: bool) -> int:
    """Print ``body``; unless ``smoke``, put it into time_to_accuracy.md and the compare tables (headed by
    ``seed_section``) into seed_experiments.md, each between the ``key`` markers."""
    if not smoke:
        replace_section(RESULTS / "time_to_accuracy.md", key, body, "Time to accuracy")
        replace_section(
            RESULTS / "seed_experiments.md", key, seed_section + report_markdown(out), "Seed experiments"
        )
    print(body)
    return 0


def run_record(args: Any) -> dict:
    """Date, machine, command line and arguments for the head of a JSON results record."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"2-core CPU, no GPU ({platform.machine()}), torch threads={args.threads}",
        "command": "python " + " ".join(sys.argv),
        "arguments": vars(args),
    }


def fashion_tensors(
    n_train: int, n_test: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed random Fashion-MNIST subsets from ``cadence.data.load`` (``subset_seed`` 0).

    Returns train inputs, train labels, test inputs, test labels: float images in [0, 1] of shape
    (N, 1, 28, 28) and int64 labels.
    """
    from cadence.data import load

    data = load("fashion-mnist", subset=n_train, test_size=n_test)
    return data.train.inputs, data.train.targets, data.test.inputs, data.test.targets


# The two small CNN setups of ensembles.py and regularization_effects.py (SGD, one cosine decay).
CNN_SETUPS = {
    "mnist1d": {
        "load": {"name": "mnist1d"},
        "model": "cnn1d",
        "epochs": 20,
        "batch_size": 100,
        "max_lr": 0.1,
        "note": "MNIST-1D (4000 train / 1000 test), reference CNN (cnn1d), {epochs} epochs of batch 100",
    },
    "fashion-mnist": {
        "load": {"name": "fashion-mnist", "subset": 4000, "test_size": 2000, "normalize": True},
        "model": "cnn28",
        "epochs": 6,
        "batch_size": 100,
        "max_lr": 0.05,
        "note": "Fashion-MNIST subset (4000 train / 2000 test images), cnn28, {epochs} epochs of batch 100",
    },
}


def held_out_accuracy(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 500
) -> float:
    """Accuracy (a fraction) of ``model`` on ``(inputs, targets)``: the Trainer's evaluation
    (``cadence.train.evaluation.evaluate_model``, eval mode, modes restored), in batches of ``batch_size``."""
    from cadence.train.evaluation import evaluate_model

    batches = [
        (inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(inputs), batch_size)
    ]
    device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))
    scores = evaluate_model(model, batches, torch.nn.functional.cross_entropy, device=device)
    return scores["val_accuracy"]


def evaluate_scores(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Accuracy, NLL (cross-entropy) and ECE (15 bins) of ``model`` in eval mode, in batches of 500."""
    from cadence.calibration import expected_calibration_error

    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(inputs[i : i + 500]) for i in range(0, len(inputs), 500)])
    return {
        "accuracy": float((outputs.argmax(1) == targets).float().mean()),
        "nll": float(torch.nn.functional.cross_entropy(outputs, targets)),
        "ece": expected_calibration_error(outputs, targets),
    }


def significance(
    values: list[float], baseline: list[float], name: str, baseline_name: str, metric: str
) -> str:
    """``cadence compare``'s sentence for ``values`` against ``baseline``: Welch t-test, its CI, and the
    percentile bootstrap CI of the difference of means."""
    from cadence.tracking.stats import compare_samples

    result = compare_samples(name, values, baseline_name, baseline, metric=metric)
    boot = result.get("bootstrap")
    if boot:
        scale = result["scale"]
        result["statement"] += f"; bootstrap 95% CI [{boot['low'] * scale:+.2f}, {boot['high'] * scale:+.2f}]"
    return result["statement"]


def keep_result(results: list[dict], result: dict, output: Path) -> None:
    """Append ``result``, print it as one JSON line and rewrite all results so far to ``output``'s .json."""
    results.append(result)
    print(json.dumps(result), flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")


def rerender(output: Path, render: Callable[[list[dict]], str]) -> None:
    """Rewrite the markdown ``output`` from its ``.json`` results, keeping the original run's date line."""
    results = json.loads(output.with_suffix(".json").read_text())
    previous = output.read_text().splitlines() if output.exists() else []
    date = next((line for line in previous if line.startswith("- date:")), None)
    lines = render(results).splitlines()
    if date is not None:
        lines = [date if line.startswith("- date:") else line for line in lines]
    write_markdown("\n".join(lines) + "\n", output)


def write_markdown(report: str, output: Path) -> None:
    """Write the markdown ``report`` to ``output`` and print it."""
    output.write_text(report)
    print(report)
