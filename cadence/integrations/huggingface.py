"""cadence in the Hugging Face ``Trainer``: schedules, snapshots, SWA/EMA, FreezeOut, gradual unfreezing.

One ``TrainerCallback`` runs cadence's hyperparameter pipeline and cadence's own technique objects on the
HF clock (``state.global_step``, the optimizer update index)::

    from cadence.callbacks import EMA
    from cadence.integrations.huggingface import CadenceTrainerCallback

    schedule = one_cycle(3e-4, total_steps=1000)
    trainer = transformers.Trainer(model=model, args=TrainingArguments(..., max_steps=1000),
        train_dataset=data, callbacks=[CadenceTrainerCallback({"lr": schedule}, callbacks=[EMA(0.999)])])
    trainer.train()

Before the first micro-batch of every update the callback writes ``lr`` (and momentum/β1,
``weight_decay`` when scheduled) into every param group, times the group's ``lr_scale`` and the techniques'
per-group factors. The HF scheduler keeps running but is overwritten before every update, so what HF logs
as ``learning_rate`` is its own schedule's value, not the one used; ``callback.values`` holds cadence's
(give ``lr_scheduler_type="constant"`` to keep the two apart clearly).

Resume: whatever is a function of the step is recomputed. What is not (the SWA/EMA averages, the snapshots
taken) is written at every HF checkpoint to ``checkpoint-N/cadence_callbacks.pt`` and read back from the
checkpoint of the resumed step (``output_dir/checkpoint-{global_step}``, or ``resume_from=``) when
``trainer.train(resume_from_checkpoint=...)`` starts.

Needs ``pip install 'cadence[transformers]'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence.ensembles import unwrap_model
from cadence.errors import ConfigError
from cadence.hyperparams import ScheduleOrValue
from cadence.integrations._bridge import Bridge, steps_per_epoch
from cadence.integrations._extras import require
from cadence.lr_finder.auto import needs_lr_finder, resolve_auto_schedules
from cadence.lr_finder.selection import LRSelection
from cadence.train.callback import Callback
from cadence.train.state import TrainState

_transformers = require("transformers", "transformers")
from transformers import TrainerCallback  # noqa: E402  (after the check that names the extra)

__all__ = ["STATE_FILE", "CadenceTrainerCallback", "resolve_auto_lr"]

#: The file in each HF checkpoint folder that holds the cadence callbacks' state.
STATE_FILE = "cadence_callbacks.pt"


class CadenceTrainerCallback(TrainerCallback):
    """cadence's schedules and techniques in a Hugging Face ``Trainer`` run (see the module docstring).

    Args:
        schedules: ``{"lr": ..., "momentum": ..., "weight_decay": ...}``, schedules or numbers; momentum
            goes to ``momentum`` (SGD) or ``betas[0]`` (AdamW, HF's default).
        callbacks: cadence technique objects from :mod:`cadence.callbacks` -- ``SnapshotEnsemble``, ``SWA``,
            ``EMA``, ``FreezeOut``, ``GradualUnfreezing`` -- run in this order. (``Mixup`` replaces the
            batch, which an HF callback cannot: mix in ``compute_loss`` with ``Mixup(...).mix``.)
        submodule: the attribute of the model the techniques work on (``"backbone"``: snapshots, averages
            and layer groups are of ``model.backbone``); default the whole model.
        total_steps: the run's optimizer steps; default HF's ``state.max_steps``.
        run_dir: where snapshots, ``swa_model.pt`` / ``ema_model.pt`` and ``summary.json`` go; default
            ``args.output_dir``.
        resume_from: the checkpoint folder to read the callbacks' state from on resume; default
            ``output_dir/checkpoint-{global_step}`` of the step HF resumes at.
        seed: the run's seed, given to the techniques; default ``args.seed``.

    SWA's batch-norm refresh runs the averaged model on the inputs of ``(inputs, ...)`` batches; HF batches
    are dicts, so with batch norm recompute the statistics yourself (``WeightAverage.update_bn``).
    """

    def __init__(
        self,
        schedules: Mapping[str, ScheduleOrValue] | None = None,
        callbacks: Sequence[Callback] = (),
        *,
        submodule: str | None = None,
        total_steps: int | None = None,
        run_dir: str | os.PathLike | None = None,
        resume_from: str | os.PathLike | None = None,
        seed: int | None = None,
    ) -> None:
        self.bridge = Bridge(
            schedules,
            callbacks,
            host="Hugging Face Trainer",
            total_steps=total_steps,
            run_dir=run_dir,
            seed=seed or 0,
        )
        self.submodule = submodule
        self.seed = seed
        self.resume_from = Path(resume_from) if resume_from is not None else None

    @property
    def state(self) -> TrainState | None:
        """cadence's state of the run (``None`` before training starts)."""
        return self.bridge.state

    @property
    def values(self) -> dict[str, float]:
        """The unscaled values written for the current step, e.g. ``{"lr": 0.1}``."""
        return dict(self.bridge.state.hyperparams) if self.bridge.state is not None else {}

    # -- hooks -----------------------------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model: nn.Module | None = kwargs.get("model")
        optimizer: torch.optim.Optimizer | None = kwargs.get("optimizer")
        if model is None or optimizer is None:
            raise ConfigError("the Hugging Face Trainer gave the callback no model or optimizer")
        if self.seed is None:
            self.bridge.seed = int(args.seed)
        step = int(state.global_step)
        if step > 0 and self.bridge.stateful:
            self._load(Path(self.resume_from or Path(args.output_dir) / f"checkpoint-{step}"))
        train_dataloader = kwargs.get("train_dataloader")
        batches = float(len(train_dataloader)) if train_dataloader is not None else 0.0
        model = unwrap_model(model)
        if self.submodule is not None:
            part = getattr(model, self.submodule, None)
            if not isinstance(part, nn.Module):
                raise ConfigError(f"the model has no submodule {self.submodule!r}")
            model = part
        self.bridge.start(
            model,
            optimizer,
            step=step,
            total_steps=int(state.max_steps),
            steps_per_epoch=steps_per_epoch(batches, int(args.gradient_accumulation_steps)),
            device=args.device,
            run_dir=args.output_dir,
            rank=int(args.process_index),
            world_size=int(args.world_size),
            accumulation_steps=int(args.gradient_accumulation_steps),
        )

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        bridge_state = self.bridge.state
        if bridge_state is not None:
            self.bridge.epoch_start(bridge_state.step // bridge_state.steps_per_epoch)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Once per update, before its first micro-batch (HF calls it every gradient_accumulation_steps).
        self.bridge.before_batch(int(state.global_step), self._batch_index(state))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.bridge.after_update(int(state.global_step))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bridge.state is not None:
            self.bridge.epoch_end()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bridge.state is not None:
            self.bridge.end()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.bridge.stateful or not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.bridge.state_dict(), folder / STATE_FILE)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _batch_index(self, state: Any) -> int:
        bridge_state = self.bridge.state
        if bridge_state is None:
            return 0
        return (int(state.global_step) % bridge_state.steps_per_epoch) * bridge_state.accumulation_steps

    def _load(self, folder: Path) -> None:
        path = folder / STATE_FILE
        if not path.is_file():
            raise ConfigError(
                f"resuming at step {folder.name.rsplit('-', 1)[-1]} needs the cadence callbacks' state, "
                f"which is not in {path}: resume from a checkpoint this callback saved, or give resume_from="
            )
        self.bridge.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


class _KeywordModel(nn.Module):
    """A Hugging Face style model (keyword inputs, an output with ``logits``) as ``model(inputs)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        output = self.model(**inputs)
        if isinstance(output, torch.Tensor):
            return output
        logits = output["logits"] if isinstance(output, Mapping) else getattr(output, "logits", None)
        if logits is None:
            raise ConfigError(
                "resolve_auto_lr: the model's output has no 'logits'; pass a model that returns them"
            )
        return logits


def _pairs(batches: Any, label_key: str) -> list[tuple[dict[str, Any], torch.Tensor]]:
    pairs = []
    for batch in batches:
        if not isinstance(batch, Mapping) or label_key not in batch:
            raise ConfigError(
                f"resolve_auto_lr: every batch must be a dict with the labels under {label_key!r} "
                f"(label_key=), got {type(batch).__name__}"
            )
        pairs.append(({key: value for key, value in batch.items() if key != label_key}, batch[label_key]))
    if len(pairs) < 2:
        raise ConfigError("resolve_auto_lr: needs at least 2 batches (some are held out for validation)")
    return pairs


def _token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # (N, K) logits with (N,) labels, or (N, T, K) with (N, T): ignore_index -100 as in transformers
    return torch.nn.functional.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=-100)


def resolve_auto_lr(
    model: nn.Module,
    batches: Any,
    schedules: Mapping[str, ScheduleOrValue],
    *,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    label_key: str = "labels",
    loss_fn: Any = None,
    run_dir: str | Path | None = None,
    selection_options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], LRSelection | None]:
    """Choose ``max_lr`` for the ``"auto"`` schedules of a Hugging Face model with cadence's sweep + LR race.

    ``batches`` are the training batches as the HF Trainer feeds them: dicts of tensors with the labels under
    ``label_key`` (e.g. ``list(trainer.get_train_dataloader())``, or a slice of it for a cheaper race). The
    race trains deep copies of ``model`` and ``optimizer`` (both left untouched) with
    ``loss_fn(logits, labels)`` -- default cross-entropy over the last dimension with ``ignore_index=-100``,
    which covers sequence classification and token-level labels -- holds out about a tenth of the batches
    for validation, and costs ``selection_options["budget"]`` (default 1) times ``total_steps`` extra steps.
    Returns the schedules with the chosen LR (give them to :class:`CadenceTrainerCallback`) and the record
    (``None`` when ``run_dir/lr_selection.json`` already held a choice, which is reused on a resume).

    Limits: one process; the model's own loss (``outputs.loss``) is not used, the race scores with
    ``loss_fn`` on the logits; accuracy is not tracked.

    Example::

        schedules, selection = resolve_auto_lr(model, list(trainer.get_train_dataloader()),
                                               {"lr": one_cycle(max_lr="auto", total_steps=1000)},
                                               optimizer=torch.optim.AdamW(model.parameters()),
                                               total_steps=1000)
        trainer.add_callback(CadenceTrainerCallback(schedules))
    """
    if not any(needs_lr_finder(schedule) for schedule in schedules.values()):
        return dict(schedules), None
    return resolve_auto_schedules(
        schedules,
        model=_KeywordModel(model),
        optimizer=optimizer,
        loss_fn=loss_fn or _token_cross_entropy,
        train_data=_pairs(batches, label_key),
        total_steps=int(total_steps),
        run_dir=run_dir,
        selection_options=selection_options,
        trainer_options={"metrics": ()},
        seed=seed,
    )
