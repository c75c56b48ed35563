"""cadence in Lightning: schedules, snapshots, SWA/EMA, FreezeOut, gradual unfreezing and ``max_lr="auto"``.

One callback runs cadence's hyperparameter pipeline and cadence's own technique objects on Lightning's clock
(``trainer.global_step``, the optimizer update index)::

    from cadence.callbacks import SWA, SnapshotEnsemble
    from cadence.integrations.lightning import CadenceCallback

    schedule = one_cycle(0.1, total_steps=1000)
    trainer = lightning.Trainer(max_steps=1000, callbacks=[
        CadenceCallback({"lr": schedule, "momentum": schedule.momentum()}, callbacks=[SWA(start=0.75)])])
    trainer.fit(module, train_loader)

The LightningModule returns a bare optimizer from ``configure_optimizers`` (no LR scheduler: the callback
writes ``lr`` and momentum/β1 into every param group before each update, times the group's ``lr_scale`` and
the techniques' per-group factors). Everything that is a function of the step is recomputed after a resume;
the SWA/EMA averages and the snapshots taken are saved in Lightning's checkpoints (the callback's
``state_dict``), so ``trainer.fit(module, loader, ckpt_path=...)`` continues exactly.

Needs ``pip install 'cadence[lightning]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence.errors import ConfigError
from cadence.hyperparams import ScheduleOrValue
from cadence.integrations._bridge import Bridge, steps_per_epoch
from cadence.integrations._extras import require
from cadence.lr_finder.auto import needs_lr_finder, resolve_auto_schedules
from cadence.lr_finder.selection import LRSelection
from cadence.train.callback import Callback
from cadence.train.state import TrainState

_lightning = require("lightning", "lightning")
import lightning.pytorch as pl  # noqa: E402  (after the check that names the extra)

__all__ = ["CadenceCallback", "lightning_optimizer", "resolve_auto_lr"]


def lightning_optimizer(module: Any) -> torch.optim.Optimizer:
    """The one optimizer of ``module.configure_optimizers()`` (an optimizer, a list/tuple, or a dict)."""
    configured = module.configure_optimizers()
    if isinstance(configured, Mapping):
        configured = configured.get("optimizer")
    if isinstance(configured, (list, tuple)):
        if len(configured) == 2 and isinstance(configured[0], (list, tuple)):
            configured = configured[0]  # ([optimizers], [schedulers])
        optimizers = [item.get("optimizer") if isinstance(item, Mapping) else item for item in configured]
        if len(optimizers) != 1:
            raise ConfigError(f"cadence drives one optimizer; configure_optimizers gave {len(optimizers)}")
        configured = optimizers[0]
    if not isinstance(configured, torch.optim.Optimizer):
        raise ConfigError(
            "configure_optimizers must return a torch optimizer (or a one-element list/dict), "
            f"got {configured!r}"
        )
    return configured


def resolve_auto_lr(
    module: nn.Module,
    train_dataloader: Any,
    schedules: Mapping[str, ScheduleOrValue],
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    total_steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: Sequence[Callback] = (),
    run_dir: str | Path | None = None,
    selection_options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], LRSelection | None]:
    """Choose ``max_lr`` for the ``"auto"`` schedules of a LightningModule with cadence's sweep + LR race.

    Runs :func:`cadence.lr_finder.resolve_auto_schedules` on deep copies of ``module`` and of its optimizer
    (``optimizer``, else ``module.configure_optimizers()``); the module itself is left untouched. Returns
    the schedules with the chosen LR and the selection record (``selection.value`` is the LR; ``None`` when
    ``run_dir/lr_selection.json`` already held a choice, which is then reused).

    Limits: the sweep and the race train with cadence's own training step, ``loss_fn(module(inputs),
    targets)`` on ``(inputs, targets)`` batches of ``train_dataloader`` -- not your ``training_step`` --
    on one process, and hold out part of the training data for validation; the race costs
    ``selection_options["budget"]`` (default 1) times ``total_steps`` extra optimizer steps.
    ``callbacks`` are cadence callbacks that shape a step (FreezeOut, GradualUnfreezing), raced with copies.
    """
    if not any(needs_lr_finder(schedule) for schedule in schedules.values()):
        return dict(schedules), None
    optimizer = optimizer if optimizer is not None else lightning_optimizer(module)
    return resolve_auto_schedules(
        schedules,
        model=module,
        optimizer=optimizer,
        loss_fn=loss_fn,
        train_data=train_dataloader,
        total_steps=int(total_steps),
        run_dir=run_dir,
        selection_options=selection_options,
        callbacks=[callback for callback in callbacks if callback.shapes_training],
        seed=seed,
    )


class CadenceCallback(pl.Callback):
    """cadence's schedules and techniques in a Lightning run (see the module docstring).

    Args:
        schedules: ``{"lr": ..., "momentum": ..., "weight_decay": ...}``, schedules or numbers; momentum
            goes to ``momentum`` (SGD) or ``betas[0]`` (Adam). A schedule with ``max_lr="auto"`` is resolved
            at ``on_train_start`` by :func:`resolve_auto_lr`, which then needs ``loss_fn``.
        callbacks: cadence technique objects from :mod:`cadence.callbacks` -- ``SnapshotEnsemble``, ``SWA``,
            ``EMA``, ``FreezeOut``, ``GradualUnfreezing`` -- run in this order, as cadence's Trainer runs
            them. (``Mixup`` replaces the batch, which a Lightning callback cannot: call
            ``Mixup(...).mix(x, y, seed=..., step=self.global_step, batch_index=batch_idx)`` in
            ``training_step``.)
        submodule: the attribute of the LightningModule the techniques work on (``"net"``: snapshots, the
            averages and the layer groups are of ``module.net``); default the LightningModule itself.
        total_steps: the run's optimizer steps; default ``trainer.max_steps`` or, without it,
            ``trainer.estimated_stepping_batches``.
        run_dir: where snapshots (``snapshots/snapshot-k.pt``), ``swa_model.pt`` / ``ema_model.pt``,
            ``summary.json`` and ``lr_selection.json`` go; default ``trainer.default_root_dir``.
        loss_fn, selection_options: for ``max_lr="auto"`` (see :func:`resolve_auto_lr`).
        seed: the run's seed, given to the techniques (and the LR race).

    ``values`` holds the unscaled values written for the current step; ``state`` is cadence's
    :class:`~cadence.train.state.TrainState` of the run (its ``pipeline`` describes who shaped which value).
    """

    def __init__(
        self,
        schedules: Mapping[str, ScheduleOrValue] | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        submodule: str | None = None,
        total_steps: int | None = None,
        run_dir: str | Path | None = None,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
        selection_options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.bridge = Bridge(
            schedules, callbacks, host="Lightning", total_steps=total_steps, run_dir=run_dir, seed=seed
        )
        self.submodule = submodule
        self.loss_fn = loss_fn
        self.selection_options = dict(selection_options or {})
        self.selection: LRSelection | None = None

    @property
    def state(self) -> TrainState | None:
        """cadence's state of the run (``None`` before training starts)."""
        return self.bridge.state

    @property
    def values(self) -> dict[str, float]:
        """The unscaled values written for the current step, e.g. ``{"lr": 0.1, "momentum": 0.9}``."""
        return dict(self.bridge.state.hyperparams) if self.bridge.state is not None else {}

    def _model(self, pl_module: nn.Module) -> nn.Module:
        if self.submodule is None:
            return pl_module
        model = getattr(pl_module, self.submodule, None)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"the LightningModule has no submodule {self.submodule!r}")
        return model

    # -- hooks -----------------------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not on_fit_start: Lightning restores the optimizer and the loops (the global step) after it.
        if len(trainer.optimizers) != 1:
            raise ConfigError(
                f"CadenceCallback drives one optimizer; configure_optimizers gave {len(trainer.optimizers)}"
            )
        if trainer.lr_scheduler_configs:
            raise ConfigError(
                "CadenceCallback writes the LR itself: return only the optimizer from configure_optimizers "
                "(no lr_scheduler), or use cadence.schedules.LRSchedulerAdapter as the scheduler instead"
            )
        optimizer = trainer.optimizers[0]
        total_steps = self.bridge.total_steps
        if total_steps is None:
            total_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if total_steps is None:
            total_steps = int(trainer.estimated_stepping_batches)
        run_dir = self.bridge.run_dir or Path(trainer.default_root_dir)
        model = self._model(pl_module)
        if any(needs_lr_finder(schedule) for schedule in self.bridge.schedules.values()):
            if self.loss_fn is None:
                raise ConfigError(
                    'max_lr="auto" in Lightning needs CadenceCallback(loss_fn=...): the LR race trains '
                    "copies of the model with loss_fn(model(inputs), targets)"
                )
            resolved, self.selection = resolve_auto_lr(
                model,
                trainer.train_dataloader,
                self.bridge.schedules,
                loss_fn=self.loss_fn,
                total_steps=total_steps,
                optimizer=optimizer,
                callbacks=self.bridge.callbacks,
                run_dir=run_dir if trainer.is_global_zero else None,
                selection_options=self.selection_options,
                seed=self.bridge.seed,
            )
            self.bridge.schedules = resolved
        accumulation = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        self.bridge.start(
            model,
            optimizer,
            step=trainer.global_step,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch(float(trainer.num_training_batches), accumulation),
            device=pl_module.device,
            run_dir=run_dir,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            train_data=trainer.train_dataloader,
            accumulation_steps=accumulation,
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bridge.epoch_start(trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.bridge.before_batch(trainer.global_step, batch_idx)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.bridge.after_update(trainer.global_step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bridge.epoch_end()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bridge.state is not None:
            self.bridge.end()

    def state_dict(self) -> dict[str, Any]:
        return self.bridge.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.bridge.load_state_dict(state_dict)
