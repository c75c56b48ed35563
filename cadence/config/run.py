"""Trainers for built experiments, and running a config end to end."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.config.build import Experiment, build_experiment
from cadence.errors import ConfigError


def trainer_for(
    experiment: Experiment,
    run_dir: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
    print_lr_scaling: bool = False,
) -> Any:
    """A :class:`cadence.train.trainer.Trainer` for a built experiment, writing to ``run_dir``.

    Its fingerprint is the config's (:func:`cadence.config.fingerprint.config_fingerprint`: the resolved
    config, ``overrides`` and the data files read); ``log`` receives the Trainer's one-line notes. The LR
    scaling plan, if any, is recorded in ``summary.json``; with ``print_lr_scaling`` rank 0 also prints it
    when ``fit`` starts.
    """
    from cadence.config.fingerprint import config_fingerprint
    from cadence.train.trainer import Trainer

    callbacks = list(experiment.callbacks)
    if experiment.lr_scaling is not None:
        from cadence.distributed import RecordLRScaling

        callbacks.append(RecordLRScaling(experiment.lr_scaling, print_summary=print_lr_scaling))
    return Trainer(
        experiment.model,
        experiment.optimizer,
        experiment.loss_fn,
        experiment.train_loader,
        schedules=experiment.schedules or None,
        eval_data=experiment.eval_loader,
        callbacks=callbacks,
        run_dir=run_dir,
        config=experiment.config,
        fingerprint=config_fingerprint(
            experiment.config, overrides, experiment.data.meta.get("files", []) if experiment.data else []
        ),
        log=log,
        **experiment.trainer_options,
    )


def build_trainer(config: Mapping[str, Any], run_dir: str | Path | None = None) -> Any:
    """Build a :class:`cadence.train.trainer.Trainer` for ``config`` writing to ``run_dir``.

    When the config's LR is scaled (see docs/distributed.md), rank 0 prints the plan when ``fit`` starts.
    """
    return trainer_for(build_experiment(config), run_dir, print_lr_scaling=True)


def run_config(
    config: Mapping[str, Any],
    run_dir: str | Path | None = None,
    resume: bool = False,
    *,
    log: Callable[[str], None] | None = None,
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    allow_changes: bool = False,
    check_run_dir: bool = False,
) -> Any:
    """Build and fit the experiment of ``config``; ``resume=True`` continues from the latest good checkpoint.

    ``log`` receives one-line notes for the user (the LR scaling applied, the checkpoint resumed from,
    checkpoints skipped as corrupt), on the main process only. ``overrides`` (the ``--set`` values) are
    recorded in the fingerprint. With ``check_run_dir`` (what ``cadence train`` does) the run directory
    policy of :func:`cadence.tracking.fingerprint.check_run_dir` applies first: a new run only into an empty
    directory (``overwrite`` deletes a previous run there), a resume only of an existing run with a
    checkpoint and the same fingerprint (``allow_changes`` lifts that). Without it, ``resume=True`` with no
    checkpoint starts afresh, like ``Trainer.fit(resume="latest")``.
    Returns the final :class:`~cadence.train.state.TrainState`.
    """
    from cadence import distributed

    if resume and run_dir is None:
        raise ConfigError("resume needs the run directory of the run to continue")
    experiment = build_experiment(config)
    trainer = trainer_for(experiment, run_dir, overrides=overrides, log=log)
    if check_run_dir and run_dir is not None and distributed.is_main_process():
        from cadence.tracking.fingerprint import check_run_dir as check

        check(run_dir, trainer.fingerprint, resume=resume, overwrite=overwrite, allow_changes=allow_changes)
    if log is not None and experiment.lr_scaling is not None and distributed.is_main_process():
        log(experiment.lr_scaling.summary())
    # the plan went to ``log`` above (before the run directory is set up); the Trainer only records it
    return trainer.fit(resume="latest" if resume else "auto")  # auto: latest after a torchrun restart
