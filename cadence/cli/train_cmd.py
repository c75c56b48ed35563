"""``cadence train CONFIG.toml [--set section.key=value ...] [--run-dir DIR] [--resume | --overwrite]``.

Also ``--allow-changes`` (with ``--resume``) and ``--nproc N``. ``--print-config`` prints the config with
every default filled in (TOML that reads back into the same run); ``--dry-run`` validates and builds
everything, prints what would run (steps, schedules, the LR selection plan) and exits without training.

The run directory is never reused silently: a new run goes into a missing or empty directory (``--overwrite``
deletes a previous run there first), and ``--resume`` continues only an existing run whose fingerprint (the
resolved config, data files, cadence version) is unchanged, unless ``--allow-changes``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cadence.errors import ConfigError
from cadence.tracking.run_dir import RunDir

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", help="TOML config with [data] [model] [optimizer] [schedule] [train] sections"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help='override a config value (a TOML literal: 0.1, true, "text", [1, 2]); repeatable',
    )
    parser.add_argument("--run-dir", help="run directory (default: runs/<config name>-<UTC time>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest good checkpoint in --run-dir"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run already in --run-dir (checkpoints and records) and start afresh",
    )
    parser.add_argument(
        "--allow-changes",
        action="store_true",
        help="with --resume: continue even though the config, seed or data differ from the run's",
    )
    parser.add_argument(
        "--nproc", type=int, default=1, help="data-parallel processes on this machine (default 1)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (every default filled in, as TOML) and exit",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and build everything, print what would run and exit without training",
    )
    add_config_reference(parser)


def add_config_reference(parser: argparse.ArgumentParser) -> None:
    """Append the config key reference (generated from the schema) to ``parser``'s help."""
    from cadence.config.describe import config_reference

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "config sections and keys (cadence config-help SECTION for one):\n\n" + config_reference()


def _explain(args: argparse.Namespace, config: dict) -> int:
    """``--print-config`` and ``--dry-run``: describe the run; nothing is written or trained."""
    if args.print_config:
        from cadence.config.describe import resolved_config_text

        print(resolved_config_text(config), end="")
        return 0
    from cadence.config import build_experiment
    from cadence.config.check import check_config
    from cadence.config.describe import dry_run_plan

    check_config(config)
    experiment = build_experiment(config)
    for line in dry_run_plan(experiment):
        print(f"cadence train: {line}")
    print("cadence train: dry run: nothing was trained or written")
    return 0


def _default_run_dir(config_path: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path("runs") / f"{Path(config_path).stem}-{stamp}"


def _child_argv(args: argparse.Namespace, run_dir: Path) -> list[str]:
    argv = ["train", args.config, "--run-dir", str(run_dir)]
    for override in args.overrides:
        argv += ["--set", override]
    if args.resume:
        argv.append("--resume")
    if args.allow_changes:
        argv.append("--allow-changes")
    return argv  # no --overwrite: the launching process has already cleared the directory


def run(args: argparse.Namespace) -> int:
    from cadence.config import load_config, run_config

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {args.nproc}")
    if args.resume and not args.run_dir:
        raise ConfigError("--resume needs --run-dir DIR (the run to continue)")
    config = load_config(args.config, args.overrides)  # fail fast, before any process starts
    if args.print_config or args.dry_run:
        return _explain(args, config)
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(args.config)
    from cadence import distributed

    if args.nproc > 1 and distributed.launched_by_torchrun():
        raise ConfigError("--nproc: the processes were already started by torchrun; leave --nproc out")
    if not distributed.launched_by_torchrun():
        from cadence.tracking.fingerprint import check_run_dir

        # The directory checks before any data is loaded or process started; the fingerprint check of
        # --resume follows once the data files are known (rank 0 only, in run_config).
        check_run_dir(run_dir, None, resume=args.resume, overwrite=args.overwrite)
    if args.nproc > 1:
        return int(distributed.launch_local(args.nproc, _child_argv(args, run_dir)))
    state = run_config(
        config,
        run_dir=run_dir,
        resume=args.resume or distributed.restarted_by_torchrun(),  # a restart continues the run
        log=lambda line: print(f"cadence train: {line}", flush=True),
        overrides=args.overrides,
        overwrite=args.overwrite,
        allow_changes=args.allow_changes,
        check_run_dir=True,
    )
    summary_path = RunDir(run_dir).summary_path
    if not distributed.is_main_process():  # rank 0 reports for everyone
        return 0
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        final = ", ".join(
            f"{key} {value:.4g}" if isinstance(value, (int, float)) else f"{key} {value}"
            for key, value in summary.get("final", {}).items()
        )
        status, steps = summary.get("status"), summary.get("steps")
        print(f"cadence train: {status} after {steps} steps; {final}; run: {run_dir}")
        if summary.get("status") in ("diverged", "failed", "stalled"):
            return 1
    elif state is not None:
        print(f"cadence train: finished at step {getattr(state, 'step', '?')}; run: {run_dir}")
    return 0
