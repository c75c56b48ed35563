"""TrainState: the single source of truth about a training run in progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence.hyperparams import HyperparamPipeline

__all__ = ["TrainState"]


@dataclass
class TrainState:
    """Everything the loop knows. Callbacks read and write these fields and nothing else.

    Counters follow one vocabulary: ``step`` is the 0-based index of the optimizer update about to happen
    (after ``on_step_end`` it has been incremented), ``epoch`` the 0-based epoch in progress and
    ``batch_index`` the index of the next micro-batch within that epoch.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    total_steps: int
    steps_per_epoch: int
    step: int = 0
    epoch: int = 0
    batch_index: int = 0
    accumulation_steps: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    run_dir: Path | None = None
    seed: int = 0
    num_classes: int | None = None
    #: The current micro-batch ``(inputs, targets)``; ``on_batch_start`` may replace it (mixup does).
    batch: tuple[Any, Any] | None = None
    #: Model outputs and loss of the current micro-batch (the loss is the unscaled, un-averaged one).
    outputs: Any = None
    loss: torch.Tensor | None = None
    #: The run's schedules by hyperparameter name (``{"lr": one_cycle(...)}``), read-only for callbacks.
    schedules: dict[str, Any] = field(default_factory=dict)
    #: The one owner of the values written into the param groups (see :mod:`cadence.hyperparams`):
    #: techniques register their replacements and per-group modifiers on it in ``on_fit_start``.
    pipeline: HyperparamPipeline = field(default_factory=HyperparamPipeline)
    #: What each freezing technique freezes now, by name (see
    #: :func:`cadence.transfer.freezing.combine_freezing_`): a parameter trains iff no technique freezes it.
    freezing: dict[str, Any] = field(default_factory=dict)
    #: How freezing techniques freeze. True: ``requires_grad = False``, so backward skips the frozen layers.
    #: False (the Trainer's choice under ``torch.compile``): ``requires_grad`` stays True, so the compiled
    #: graph is not recompiled at each freezing stage, and the loop drops the gradients of :attr:`frozen`
    #: before each update instead.
    freeze_by_requires_grad: bool = True
    #: The parameters frozen now (written by the freezing techniques).
    frozen: list[torch.Tensor] = field(default_factory=list)
    #: Hyperparameter values applied for the current step (unscaled), e.g. ``{"lr": 0.1, "momentum": 0.9}``.
    hyperparams: dict[str, float] = field(default_factory=dict)
    #: Mean training loss of the last completed optimizer step.
    last_loss: float = float("nan")
    #: Mean training loss of the first steps and a running average of the recent ones (stall detection).
    loss_start: float = float("nan")
    loss_average: float = float("nan")
    #: Metrics of the latest evaluation, e.g. ``{"val_loss": 0.3, "val_accuracy": 0.91}``.
    metrics: dict[str, float] = field(default_factory=dict)
    #: Number of optimizer updates skipped by the fp16 loss scaler.
    skipped_steps: int = 0
    #: Set by a callback to end training after the current step; ``stop_reason`` says why.
    should_stop: bool = False
    stop_reason: str = ""
    rank: int = 0
    world_size: int = 1
    #: Evaluate any model on any data with the run's metrics: ``evaluate(model, data) -> dict``.
    evaluate: Callable[..., dict[str, float]] | None = None
    #: Data the loop evaluates on (may be None).
    eval_data: Any = None
    train_data: Any = None
    wall_time: float = 0.0
    #: What callbacks report for ``summary.json``'s ``"extra"``, by name (``{"swa": {...}}``), set in
    #: ``on_fit_end``. The loop writes the file (:meth:`cadence.tracking.run.RunWriter.write_summary`);
    #: callbacks never write it themselves.
    summary_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_main_process(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def progress(self) -> float:
        """Fraction of training done, ``step / total_steps`` in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))
