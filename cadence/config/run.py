"""Trainers for built experiments, and running a config end to end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cadence.config.build import Experiment, build_experiment
from cadence.errors import ConfigError


def trainer_for(
    experiment: Experiment, run_dir: str | Path | None = None, *, print_lr_scaling: bool = False
) -> Any:
    """A :class:`cadence.train.trainer.Trainer` for a built experiment, writing to ``run_dir``.

    The LR scaling plan, if any, is recorded in ``summary.json``; with ``print_lr_scaling`` rank 0 also
    prints it when ``fit`` starts.
    """
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
) -> Any:
    """Build and fit the experiment of ``config``; ``resume=True`` continues from the latest checkpoint.

    ``log`` receives one-line notes for the user (the LR scaling applied, if any), on the main process only.
    Returns the final :class:`~cadence.train.state.TrainState`.
    """
    from cadence import distributed

    if resume and run_dir is None:
        raise ConfigError("resume needs the run directory of the run to continue")
    experiment = build_experiment(config)
    if log is not None and experiment.lr_scaling is not None and distributed.is_main_process():
        log(experiment.lr_scaling.summary())
    # the plan went to ``log`` above (before the run directory is set up); the Trainer only records it
    return trainer_for(experiment, run_dir).fit(resume="latest" if resume else None)
