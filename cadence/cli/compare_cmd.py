"""``cadence compare``: run configs over seeds (or read finished runs) and write a report.

    cadence compare configs/a.toml configs/b.toml --seeds 3 --target val_accuracy=0.9 --jobs 2 --out cmp
    cadence compare --runs cmp/runs other/run-dir --target val_accuracy=0.9 --out cmp2

Each config × seed runs as its own process::

    python -m cadence train CONFIG --set train.seed=S [--set ...] --run-dir OUT/runs/<config stem>/seed-S

at most ``--jobs`` at a time, each with ``OMP_NUM_THREADS = cores // jobs`` so that parallel runs do not
fight over cores. A run that fails or diverges is reported as such and does not stop the others; running
the same command again skips runs whose ``summary.json`` says "completed" and whose fingerprint still matches
(see :func:`cadence.tracking.compare.stale_run`: a changed config, ``--set`` or data file runs the seed
again, saying why), continues interrupted runs from their latest checkpoint (``cadence train --resume``) and
starts failed or diverged ones afresh.
The report (``report.html``, ``report.md``, ``results.json``, ``plots/``) goes to ``OUT``; each run's output
goes to ``OUT/logs/<config stem>-seed-S.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cadence.cli.compare_checks import check_target, first_error_line, validate_configs
from cadence.errors import ConfigError
from cadence.tracking.compare import (
    RunRecord,
    compare_runs,
    find_run_dirs,
    format_table,
    load_run,
    parse_target,
    stale_run,
)
from cadence.tracking.report import write_report
from cadence.tracking.run_dir import RunDir

__all__ = ["RunJob", "add_arguments", "plan_jobs", "progress_line", "run", "run_jobs"]

DEFAULT_OUT = "cadence-runs/compare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configs", nargs="*", metavar="CONFIG", help="TOML config files to compare")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value in every run (repeatable), e.g. --set train.epochs=3",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per config: 0 .. N-1 (default 3)")
    parser.add_argument(
        "--target",
        default=None,
        metavar="METRIC=VALUE",
        help="report steps and seconds until METRIC first reaches VALUE, e.g. val_accuracy=0.9",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (default 1)")
    parser.add_argument("--out", default=None, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=None,
        metavar="DIR",
        help="compare finished run directories instead of running configs (searched recursively)",
    )
    parser.add_argument(
        "--mlflow-experiment",
        default=None,
        metavar="NAME",
        help='compare the runs of this MLflow experiment (logged with train.loggers = ["mlflow"])',
    )
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        metavar="URI",
        help="the MLflow tracking store of --mlflow-experiment (default MLFLOW_TRACKING_URI)",
    )
    parser.add_argument("--title", default="cadence compare", help="report title")
    parser.add_argument("--no-plots", action="store_true", help="write the reports without plots")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is drawn on a terminal only: stderr that is a TTY)",
    )


@dataclass
class RunJob:
    """One config × seed to run."""

    config: Path
    name: str
    seed: int
    run_dir: Path
    log_path: Path
    overrides: tuple[str, ...] = ()
    #: Continue an interrupted run from its latest checkpoint instead of starting afresh.
    resume: bool = False

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "cadence",
            "train",
            str(self.config),
            "--set",
            f"train.seed={self.seed}",
        ]
        for override in self.overrides:
            command += ["--set", override]
        command += ["--run-dir", str(self.run_dir)]
        return [*command, "--resume"] if self.resume else command

    def stale(self, *, interrupted: bool = False) -> str | None:
        """Why the run already in ``run_dir`` does not match this job any more (None: it does)."""
        overrides = (f"train.seed={self.seed}", *self.overrides)
        from cadence.config.fingerprint import expected_fingerprint

        config = self.config
        return stale_run(
            self.run_dir, lambda: expected_fingerprint(config, overrides), require_fingerprint=interrupted
        )


def _is_completed(run_dir: Path) -> bool:
    try:
        summary = json.loads(RunDir(run_dir).summary_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(summary, dict) and summary.get("status") in ("completed", "stalled")


def _can_resume(run_dir: Path) -> bool:
    """An interrupted run (no summary, killed while "running") with a checkpoint continues from it."""
    run = RunDir(run_dir)
    if run.summary_path.exists() or not run.is_run():
        return False
    try:
        status = run.meta().get("status")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return status == "running" and any(run.checkpoints_dir.glob("*.pt"))


def _names(configs: Sequence[Path]) -> list[str]:
    """Config stems, made unique with -2, -3 ... when two files share a stem."""
    names: list[str] = []
    for config in configs:
        name, count = config.stem, 2
        while name in names:
            name, count = f"{config.stem}-{count}", count + 1
        names.append(name)
    return names


def plan_jobs(
    configs: Sequence[str | Path], seeds: int, out: Path, overrides: Sequence[str] = ()
) -> list[RunJob]:
    """Every config × seed (seeds 0 .. seeds-1), in config-major order."""
    paths = [Path(config) for config in configs]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        if path.suffix != ".toml":
            raise ConfigError(f"config files must be TOML (.toml), got {path}")
    for override in overrides:
        if "=" not in override or override.startswith("="):
            raise ConfigError(f"--set expects KEY=VALUE (e.g. train.epochs=3), got {override!r}")
        if override.split("=", 1)[0].strip() == "train.seed":
            raise ConfigError("--set train.seed is chosen by --seeds; leave it out")
    jobs = []
    for path, name in zip(paths, _names(paths)):
        for seed in range(seeds):
            jobs.append(
                RunJob(
                    path,
                    name,
                    seed,
                    out / "runs" / name / f"seed-{seed}",
                    out / "logs" / f"{name}-seed-{seed}.log",
                    tuple(overrides),
                )
            )
    return jobs


def _threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _launch(job: RunJob, threads: int) -> subprocess.Popen:
    job.log_path.parent.mkdir(parents=True, exist_ok=True)
    if job.run_dir.exists() and not job.resume:
        shutil.rmtree(job.run_dir)  # a failed or diverged earlier attempt: start afresh, not on top of it
    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }
    with job.log_path.open("w", encoding="utf-8") as log:
        return subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT, env=environment)


def _describe(job: RunJob, return_code: int) -> str:
    try:
        record = load_run(job.run_dir, name=job.name)
    except FileNotFoundError:
        return f"failed (exit code {return_code}, no run directory; see {job.log_path})"
    final = record.final() if record.usable else {}
    shown = ", ".join(f"{key} {value:.4g}" for key, value in final.items() if key.startswith("val_"))
    status = (
        record.status if return_code == 0 or not record.usable else f"{record.status} (exit {return_code})"
    )
    return f"{status}{', ' + shown if shown else ''}"


Launcher = Callable[[RunJob, int], "subprocess.Popen"]


def _seconds(value: float) -> str:
    value = max(0, round(value))
    return f"{value // 60}:{value % 60:02d}" if value >= 60 else f"{value} s"


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """The time left when ``done`` of ``total`` runs took ``elapsed`` seconds (``None`` before the first)."""
    if done <= 0:
        return None
    return elapsed / done * (total - done)


def progress_line(done: int, total: int, elapsed: float, running: int = 0, width: int = 24) -> str:
    """``[#########...............] 3/8 runs, 2 running, 0:42 elapsed, ETA 1:10`` (ETA from finished runs)."""
    filled = round(width * done / total) if total else width
    eta = eta_seconds(done, total, elapsed)
    parts = [f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs"]
    if running:
        parts.append(f"{running} running")
    parts.append(f"{_seconds(elapsed)} elapsed")
    parts.append("ETA " + (_seconds(eta) if eta is not None else "?"))
    return ", ".join(parts)


def run_jobs(
    jobs: Sequence[RunJob],
    parallel: int,
    *,
    launcher: Launcher | None = None,
    print_line: Callable[[str], None] = print,
    poll_seconds: float = 0.2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Run the jobs, at most ``parallel`` at a time; finished runs are skipped. Returns status counts.

    ``launcher(job, threads) -> Popen`` starts one job (tests replace it); the default runs ``cadence train``.
    ``progress`` receives :func:`progress_line` at every poll (``cadence compare`` draws it on a terminal);
    each ``[done ...]`` line gives the ETA too.
    """
    launch = launcher or _launch
    threads = _threads_per_job(parallel)
    counts = {"skipped": 0, "ran": 0, "failed": 0}
    pending = []
    for job in jobs:
        if _is_completed(job.run_dir):
            reason = job.stale()
            if reason is None:
                counts["skipped"] += 1
                print_line(f"[skip] {job.name} seed {job.seed}: already completed ({job.run_dir})")
                continue
            print_line(f"[rerun] {job.name} seed {job.seed}: {reason}")
        pending.append(job)
    total, done, started = len(pending), 0, time.monotonic()
    active: list[tuple[RunJob, subprocess.Popen, float]] = []
    while pending or active:
        while pending and len(active) < parallel:
            job = pending.pop(0)
            job.resume = _can_resume(job.run_dir)
            if job.resume and (reason := job.stale(interrupted=True)) is not None:
                job.resume = False  # an interrupted run of other settings: start it afresh
                print_line(f"[restart] {job.name} seed {job.seed}: {reason}")
            active.append((job, launch(job, threads), time.monotonic()))
            resumed = " (resuming from its checkpoint)" if job.resume else ""
            print_line(f"[start {done + len(active)}/{total}] {job.name} seed {job.seed}{resumed}")
        if progress is not None:
            progress(progress_line(done, total, time.monotonic() - started, len(active)))
        time.sleep(poll_seconds if active else 0)
        for entry in list(active):
            job, process, begun = entry
            return_code = process.poll()
            if return_code is None:
                continue
            active.remove(entry)
            done += 1
            counts["ran"] += 1
            description = _describe(job, return_code)
            if return_code != 0 or not _is_completed(job.run_dir):
                counts["failed"] += 1
            elapsed = time.monotonic() - begun
            eta = eta_seconds(done, total, time.monotonic() - started)
            eta_text = f", ETA {_seconds(eta)}" if eta is not None and done < total else ""
            print_line(
                f"[done {done}/{total}, {time.monotonic() - started:.0f} s{eta_text}] "
                f"{job.name} seed {job.seed}: "
                f"{description} ({elapsed:.1f} s)"
            )
    return counts


class _ProgressBar:
    """One line on a terminal, redrawn in place; other lines are printed above it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = ""

    def draw(self, line: str) -> None:
        if line != self.shown:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
            self.shown = line

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = ""

    def print_line(self, line: str) -> None:
        shown = self.shown
        self.clear()
        print(line, flush=True)
        if shown:
            self.draw(shown)


def _failed_record(job: RunJob) -> RunRecord:
    return RunRecord(
        path=job.run_dir,
        name=job.name,
        seed=job.seed,
        status="failed",
        error=f"the process left no run record; see {job.log_path}",
    )


def _load_job_runs(jobs: Sequence[RunJob]) -> list[RunRecord]:
    runs = []
    for job in jobs:
        if job.run_dir.is_dir() and RunDir(job.run_dir).is_run():
            record = load_run(job.run_dir, name=job.name)
            if record.status in ("incomplete", "missing", "running"):
                record.status = "failed"
                record.error = (
                    record.error or f"the process ended before the run finished; see {job.log_path}"
                )
            runs.append(record)
        else:
            runs.append(_failed_record(job))
    return runs


def _check_arguments(args: argparse.Namespace) -> None:
    experiment = getattr(args, "mlflow_experiment", None)
    if experiment and (args.runs or args.configs):
        raise ConfigError("give CONFIG files, --runs DIR or --mlflow-experiment NAME, only one of them")
    if getattr(args, "mlflow_uri", None) and not experiment:
        raise ConfigError("--mlflow-uri needs --mlflow-experiment NAME")
    if experiment:
        if args.overrides:
            raise ConfigError("--set applies to runs that compare starts; it cannot change MLflow runs")
        return
    if args.runs and args.configs:
        raise ConfigError("give CONFIG files to run or --runs DIR to read finished runs, not both")
    if not args.runs and not args.configs:
        raise ConfigError(
            "nothing to compare: give CONFIG files (e.g. configs/a.toml configs/b.toml) or --runs DIR"
        )
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    if args.runs and args.overrides:
        raise ConfigError("--set applies to runs that compare starts; it cannot change finished --runs")


def _report_failures(jobs: Sequence[RunJob], runs: Sequence[RunRecord]) -> int:
    """Print one line per run that failed (not a diverged run: that is a result); returns how many."""
    failed = 0
    for job, record in zip(jobs, runs):
        if record.usable or record.status == "diverged":
            continue
        failed += 1
        reason = first_error_line(job.log_path, record.error)
        print(f"cadence compare: {job.name} seed {job.seed} {record.status}: {reason}")
    return failed


def run(args: argparse.Namespace, *, launcher: Launcher | None = None) -> int:
    """Entry point of ``cadence compare`` (``launcher`` replaces process start-up in tests).

    Every config with every ``--set`` and the ``--target`` metric are checked before the first run starts.
    Returns 0 when every run completed or diverged, 1 when a run failed (its first error line is printed).
    """
    _check_arguments(args)
    target = parse_target(args.target) if args.target else None
    out = Path(args.out or DEFAULT_OUT)
    order: list[str] | None = None
    failed = 0
    if getattr(args, "mlflow_experiment", None):
        from cadence.tracking.mlflow_runs import load_mlflow_runs

        runs = load_mlflow_runs(args.mlflow_experiment, args.mlflow_uri)
        if target is not None:
            check_target(target[0], runs)
    elif args.runs:
        runs = [load_run(path) for path in find_run_dirs(args.runs)]
        if target is not None:
            check_target(target[0], runs)
    else:
        jobs = plan_jobs(args.configs, args.seeds, out, args.overrides)
        validate_configs(list(dict.fromkeys(job.config for job in jobs)), args.overrides)
        if target is not None:
            check_target(target[0])
        print(
            f"cadence compare: {len(args.configs)} config(s) x {args.seeds} seed(s) = {len(jobs)} runs, "
            f"{args.jobs} at a time, {_threads_per_job(args.jobs)} thread(s) each -> {out}",
            flush=True,
        )
        show_bar = not getattr(args, "no_progress", False) and sys.stderr.isatty()
        bar = _ProgressBar(sys.stderr) if show_bar else None
        try:
            counts = run_jobs(
                jobs,
                args.jobs,
                launcher=launcher,
                print_line=bar.print_line if bar else lambda line: print(line, flush=True),
                progress=bar.draw if bar else None,
            )
        finally:
            if bar is not None:
                bar.clear()
        print(
            f"cadence compare: {counts['ran']} ran ({counts['failed']} failed), {counts['skipped']} skipped",
            flush=True,
        )
        runs = _load_job_runs(jobs)
        order = list(dict.fromkeys(job.name for job in jobs))
        failed = _report_failures(jobs, runs)
    comparison = compare_runs(runs, target=target, order=order)
    paths = write_report(comparison, runs, out, title=args.title, plots=not args.no_plots)
    print()
    print(format_table(comparison))
    print()
    print(f"report: {paths['html']}")
    print(f"        {paths['markdown']}, {paths['results']}")
    usable = sum(1 for run_record in runs if run_record.usable)
    if failed:
        print(
            f"cadence compare: {failed} run(s) failed; see the lines above and {out / 'logs'}",
            file=sys.stderr,
        )
    return 0 if usable and not failed else 1
