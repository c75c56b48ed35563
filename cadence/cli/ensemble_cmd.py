"""``cadence ensemble RUN_DIR [--data NAME] [--k K] [--combine MODE]``: evaluate a run's snapshot ensemble.

Reads ``RUN_DIR/config.toml`` (written by ``cadence train``) to rebuild the model and the data, loads every
``RUN_DIR/snapshots/snapshot-k.pt`` as a member, and scores each member, the whole ensemble and (with
``--k``) the best ``k`` members chosen greedily. The run trained on the whole training split, so the
dataset's test split is divided once, with a fixed seed, into a *validation* half (selection only) and a
*test* half (scored after selection). The table is printed and written to ``RUN_DIR/ensemble.md`` and
``RUN_DIR/ensemble.json``. Averaged models saved by SWA/EMA (``swa_model.pt``, ``ema_model.pt``) are scored
as extra rows when present.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from cadence.errors import ConfigError
from cadence.tracking.run_dir import RunDir

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with config.toml and snapshots/")
    parser.add_argument("--data", metavar="NAME", help="evaluate on this dataset instead of the config's")
    parser.add_argument(
        "--k", type=int, help="also choose the best K members greedily on the validation half"
    )
    parser.add_argument(
        "--combine", default="mean_prob", choices=("mean_prob", "mean_logit", "vote"), help="how to combine"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        help="fraction of the test split used for validation/selection (default 0.5)",
    )
    parser.add_argument("--device", default="cpu", help="device for inference (default cpu)")


def _snapshot_files(run_dir: Path) -> list[Path]:
    return RunDir(run_dir).snapshots()


def _split(pair: Any, val_fraction: float) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    import torch

    count = len(pair.targets)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(0))
    cut = round(count * val_fraction)
    if cut < 1 or cut >= count:
        raise ConfigError(f"--val-fraction {val_fraction} leaves no validation or no test examples ({count})")
    val, test = order[:cut].sort().values, order[cut:].sort().values
    return (pair.inputs[val], pair.targets[val]), (pair.inputs[test], pair.targets[test])


def _load(load_member: Any, path: Path, model_factory: Any) -> Any:
    """One saved model; a file that is not a readable state dict of the run's model is a ConfigError."""
    try:
        return load_member(path, model_factory)
    except ConfigError as error:  # one line: a shape mismatch lists every tensor on lines of its own
        raise ConfigError(str(error).strip().splitlines()[0]) from None
    except Exception as error:  # torch.load raises many types for a truncated or foreign file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"{path}: not a readable snapshot of this run's model ({reason})") from None


def run(args: argparse.Namespace) -> int:
    import torch

    from cadence.config import build_experiment, load_config
    from cadence.config.check import check_device
    from cadence.ensembles import collect_outputs, evaluate_ensemble, load_member

    check_device(args.device, "--device")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory not found: {run_dir}")
    if not 0.0 < args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    config_path = RunDir(run_dir).config_path
    if not config_path.is_file():
        raise ConfigError(
            f"{run_dir} has no config.toml (the run was not started from a config); build the members in "
            "Python with cadence.ensembles.Ensemble(paths, model_factory=...)"
        )
    files = _snapshot_files(run_dir)
    if not files:
        raise ConfigError(
            f"{run_dir} has no snapshots/snapshot-k.pt files; train with [callbacks.snapshot_ensemble]"
        )
    if args.k is not None and not 1 <= args.k <= len(files):
        raise ConfigError(f"--k must be between 1 and the number of snapshots ({len(files)}), got {args.k}")

    config = load_config(config_path)
    if args.data:
        config.setdefault("data", {})["name"] = args.data
    config.pop("callbacks", None)  # only the data and the architecture are needed
    experiment = build_experiment(config)
    template = experiment.model.cpu()

    def model_factory() -> torch.nn.Module:
        return copy.deepcopy(template)

    members = [_load(load_member, path, model_factory).to(args.device) for path in files]
    val, test = _split(experiment.data.test, args.val_fraction)
    report = evaluate_ensemble(
        members,
        val,
        test,
        metrics=("accuracy", "loss"),
        combine=args.combine,
        k=args.k,
        names=[path.stem for path in files],
        device=args.device,
    )
    table = report.to_markdown()
    averaged_rows = []
    for path in RunDir(run_dir).averaged_model_paths().values():
        if path.is_file():
            model = _load(load_member, path, model_factory).to(args.device)
            scores = {}
            for split, data in (("val", val), ("test", test)):
                outputs, labels = collect_outputs([model], data, device=args.device)
                logits = outputs[0]
                scores[split] = {
                    "accuracy": float((logits.argmax(1) == labels).float().mean()),
                    "loss": float(torch.nn.functional.cross_entropy(logits, labels)),
                }
            averaged_rows.append({"name": path.stem, "scores": scores})
            cells = [f"{100 * scores[s]['accuracy']:.2f}% | {scores[s]['loss']:.4f}" for s in ("val", "test")]
            table += f"| {path.stem} (1 model) | " + " | ".join(cells) + " |\n"

    count = len(experiment.data.test.targets)
    heading = (
        f"# Snapshot ensemble of {run_dir.name}\n\n"
        f"{len(files)} snapshots, combine={args.combine}, data={config['data'].get('name')}; validation = "
        f"{round(count * args.val_fraction)} and test = {count - round(count * args.val_fraction)} examples "
        f"of the test split (fixed split, seed 0); greedy selection uses the validation part only.\n\n"
    )
    (run_dir / "ensemble.md").write_text(heading + table)
    payload = {
        **report.to_dict(),
        "files": [str(path.relative_to(run_dir)) for path in files],
        "data": config["data"].get("name"),
        "val_examples": len(val[1]),
        "test_examples": len(test[1]),
        "averaged_models": averaged_rows,
    }
    (run_dir / "ensemble.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(heading + table, end="")
    print(f"written: {run_dir / 'ensemble.md'}, {run_dir / 'ensemble.json'}")
    return 0
