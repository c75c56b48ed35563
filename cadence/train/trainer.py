"""The Trainer: a short, explicit loop that applies schedules per optimizer step and never loses work."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError, DivergenceError
from cadence.hyperparams import HyperparamPipeline, ScheduleOrValue
from cadence.precision import Precision
from cadence.schedules.base import needs_lr_finder
from cadence.tracking.loggers import Logger, resolve_loggers
from cadence.tracking.run import RunWriter
from cadence.tracking.run_dir import RunDir
from cadence.train import checkpoint as checkpoints
from cadence.train import records
from cadence.train.callback import Callback, hook_table
from cadence.train.checkpoint_schema import CheckpointRecord
from cadence.train.compiling import CompileOption, apply_backend_settings, compile_arguments
from cadence.train.evaluation import accuracy, evaluate_model
from cadence.train.loss_reads import LossReads
from cadence.train.options import TrainerOptions, check_options
from cadence.train.resume import (
    checkpoint_payload,
    epoch_iterator,
    find_checkpoint,
    restore_checkpoint,
    restore_schedules,
    schedule_configs,
    write_checkpoint,
)
from cadence.train.setup import (
    count_train_batches,
    prepare_model,
    progress_callbacks,
    restore_rank_rng,
    seed_rank,
    shard_train_data,
)
from cadence.train.sharding import check_strategy_options, save_shards
from cadence.train.stall import stall_message
from cadence.train.state import TrainState
from cadence.train.step import backward_micro_batch, gradient_sync, prepare_batch
from cadence.train.targets import data_num_classes, infer_num_classes, output_classes
from cadence.transfer.freezing import drop_gradients_

__all__ = ["Trainer", "accuracy"]


#: Steps between two reads of the training loss (see benchmarks/results/sync_interval.md for the choice).
LOG_EVERY_N_STEPS = 10


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_data``; schedules are applied before every update.

    The whole loop, with its hook points (``*_end`` hooks run over the callbacks in reverse order)::

        on_fit_start                          # after a resume too, with the counters restored
        while step < total_steps and not should_stop:
            on_epoch_start
            for each group of accumulation_steps micro-batches (from batch_index on):
                hyperparams = pipeline.apply(optimizer, step)   # the one writer of param_group["lr"]
                for each micro-batch:
                    batch = to_device(batch); integer targets -> smoothed one-hot if label_smoothing
                    on_batch_start            # may replace state.batch (mixup)
                    with autocast: loss = loss_fn(model(inputs), targets)
                    backward(loss / micro-batches in the group)   # DDP: no_sync() but on the last
                    on_after_backward
                unscale -> clip grad norm -> optimizer.step() -> scaler update; zero_grad
                step += 1
                every log_every_n_steps steps: read the losses of these steps (one transfer) and log
                    {"kind": "train", ...} for each; a NaN/inf loss stops (or raises) with DivergenceError
                on_step_end
                checkpoint every checkpoint_every_steps
            evaluate every eval_every_epochs (and at the end); on_eval_end
            on_epoch_end
            epoch += 1; checkpoint every checkpoint_every_epochs
        on_fit_end

    Host reads: the loss stays on the device and is read every ``log_every_n_steps`` steps (and before each
    checkpoint, evaluation and the end), all the steps since the last read in one transfer, one
    ``all_reduce`` under DDP; between reads a step reads nothing back from the device (fp16 included, with
    an optimizer that applies the loss scale itself, such as ``fused=True`` SGD/Adam/AdamW). A non-finite
    loss is caught at the next read, which names the step it appeared at; the updates since then were
    applied. With ``log_every_n_steps=1`` the loss is read before each update, and a non-finite one stops
    the run without applying it. ``state.last_loss`` is the loss of the latest step read.

    ``step`` counts optimizer updates, not micro-batches: with ``accumulation_steps=k`` an epoch of ``B``
    batches has ``ceil(B / k)`` steps, and ``total_steps`` (given, or ``epochs × steps_per_epoch``) is what
    the schedules see. :class:`~cadence.train.state.TrainState` is the single source of truth; callbacks read
    and write its fields only.

    ``fit`` seeds Python's ``random``, numpy and torch with ``seed + rank`` before anything else (the model's
    initialisation happened before, under the caller's seed; DDP broadcasts rank 0's weights), so dropout
    and augmentation draw a different stream on each rank. Under ``torchrun`` (``WORLD_SIZE > 1`` in the
    environment) the Trainer joins the process group itself (:func:`cadence.distributed.init_from_env`).

    Resume: ``fit(resume="latest")`` (or a checkpoint path) restores model, optimizer, loss scaler, callback
    states, counters, the position in the data order and every RNG state, and continues as if never stopped:
    on CPU the final parameters are bitwise identical to an uninterrupted run. Every checkpoint is verified
    (format and SHA-256 checksum) when loaded; ``"latest"`` falls back to the newest checkpoint that passes,
    naming each one it skipped. The run's ``fingerprint`` (``meta.json``) is compared with the one recorded
    before: a difference is reported (through ``log``, else as a warning) but not refused here -- refusing is
    the command line's job (``cadence train --resume``). Under DDP rank 0 chooses the checkpoint for every
    rank, and only rank 0's RNG state is saved (see docs/distributed.md).

    Example::

        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                          torch.nn.functional.cross_entropy, train_loader, epochs=10,
                          schedules={"lr": one_cycle(max_lr=0.1, total_steps=...)},
                          eval_data=test_loader, run_dir="runs/one-cycle")
        state = trainer.fit()

    Args not obvious from the loop above: ``device="auto"`` picks ``cuda:LOCAL_RANK`` when available, else
    the CPU; ``label_smoothing`` needs ``num_classes`` (given, a ``num_classes`` attribute of the data, or
    the last dimension of the model's output); ``metrics`` names (``"accuracy"``) or callables
    ``metric(outputs, targets) -> float`` averaged over samples; ``progress`` is ``"auto"``/``True`` (a bar
    on a terminal, plain lines otherwise), or ``False``; ``config`` is written to ``run_dir/config.toml``;
    ``fingerprint`` (see :mod:`cadence.tracking.fingerprint`; by default one made from the Trainer's own
    settings) is recorded in ``meta.json``; ``log`` receives one-line notes (the checkpoint a resume starts
    from, checkpoints skipped as corrupt), which otherwise go to :mod:`warnings` when they report a problem.
    ``compile`` is ``False``, ``True`` or ``torch.compile`` arguments (``{"mode": "max-autotune", "fullgraph":
    True, "dynamic": False}``, see :mod:`cadence.train.compiling`); compiled, evaluation runs the compiled
    module too, and FreezeOut and gradual unfreezing freeze without a recompile per stage (frozen parameters
    keep ``requires_grad`` and lose their gradients before each update, see docs/freezeout.md). ``tf32`` and
    ``cudnn_benchmark`` set the CUDA backends' switches (no effect elsewhere);
    ``meta.json`` records all three under ``"backend"``.
    ``loggers`` are experiment trackers (:mod:`cadence.tracking.loggers`): names (``"tensorboard"``,
    ``"mlflow"``, ``"wandb"``) or objects with ``log_hparams``, ``log_metrics`` and ``finish``; only rank 0
    calls them, and one that raises is switched off with a warning while training goes on.
    Under ``torch.distributed`` (world size > 1) the model is wrapped in DDP (``strategy="fsdp"``: sharded
    with FSDP2, checkpoints written as shards; see docs/distributed.md), logged metrics are averaged over
    processes and only rank 0 writes files; ``timeout_s`` bounds every collective when the Trainer creates the
    process group (a rank that does not arrive raises :class:`~cadence.distributed.CollectiveTimeoutError`
    on the others, naming it where it can). ``options`` gives the TOML-settable keywords as one
    :class:`~cadence.train.options.TrainerOptions`; each keyword is given at most one way.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        train_data: Any,
        *,
        epochs: int | None = None,
        total_steps: int | None = None,
        schedules: Mapping[str, ScheduleOrValue] | None = None,
        eval_data: Any = None,
        metrics: Sequence[str | Callable[[Any, Any], Any]] = ("accuracy",),
        callbacks: Iterable[Callback] = (),
        precision: str = "fp32",
        grad_clip: float | None = None,
        accumulation_steps: int = 1,
        device: str | torch.device = "auto",
        run_dir: str | Path | None = None,
        seed: int = 0,
        label_smoothing: float = 0.0,
        num_classes: int | None = None,
        checkpoint_every_steps: int | None = None,
        checkpoint_every_epochs: int | None = 1,
        keep_checkpoints: int = 2,
        eval_every_epochs: int | None = 1,
        progress: str | bool | None = "auto",
        on_divergence: str = "stop",
        log_every_n_steps: int = LOG_EVERY_N_STEPS,
        channels_last: bool = False,
        compile: CompileOption = False,
        tf32: bool = False,
        cudnn_benchmark: bool = False,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        csv: bool = False,
        tensorboard: bool = False,
        loggers: Sequence[Logger | str] | None = None,
        lr_selection: Mapping[str, Any] | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
        timeout_s: float | None = None,
        strategy: str = "ddp",
        options: TrainerOptions | None = None,
    ) -> None:
        if options is not None:  # the TOML-settable keywords as one value: merged into the keywords
            arguments = {
                key: value for key, value in locals().items() if key not in ("self", "options", "__class__")
            }
            Trainer.__init__(self, **options.merged_with(arguments))
            return
        callbacks = list(callbacks)
        check_options(
            loss_fn=loss_fn,
            epochs=epochs,
            total_steps=total_steps,
            accumulation_steps=accumulation_steps,
            checkpoint_every_steps=checkpoint_every_steps,
            checkpoint_every_epochs=checkpoint_every_epochs,
            eval_every_epochs=eval_every_epochs,
            keep_checkpoints=keep_checkpoints,
            schedules=schedules,
            metrics=metrics,
            callbacks=callbacks,
            on_divergence=on_divergence,
            progress=progress,
            label_smoothing=label_smoothing,
            grad_clip=grad_clip,
            tensorboard=tensorboard,
            compile=compile,
            tf32=tf32,
            cudnn_benchmark=cudnn_benchmark,
        )
        #: "ddp" (replicate the model) or "fsdp" (shard it over the ranks; see docs/distributed.md).
        self.strategy = check_strategy_options(strategy, callbacks, precision)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.eval_data = eval_data
        self.epochs = epochs
        self.total_steps = total_steps
        self.schedules: dict[str, ScheduleOrValue] = dict(schedules or {})
        self.metrics = tuple(metrics)
        self.callbacks = list(callbacks)
        self.precision_mode = precision
        self.grad_clip = grad_clip
        self.accumulation_steps = accumulation_steps
        # under torchrun: join the process group (a no-op otherwise, or when it is already joined)
        distributed.init_from_env(**({"timeout_s": timeout_s} if timeout_s is not None else {}))
        self.device = distributed.default_device() if device == "auto" else torch.device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = seed
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes if num_classes is not None else data_num_classes(train_data)
        self.checkpoint_every_steps = checkpoint_every_steps
        self.checkpoint_every_epochs = checkpoint_every_epochs
        self.keep_checkpoints = keep_checkpoints
        self.eval_every_epochs = eval_every_epochs
        self.progress = progress
        self.on_divergence = on_divergence
        if (
            isinstance(log_every_n_steps, bool)
            or not isinstance(log_every_n_steps, int)
            or log_every_n_steps < 1
        ):
            raise ConfigError(f"log_every_n_steps must be an integer >= 1, got {log_every_n_steps=}")
        self.log_every_n_steps = log_every_n_steps
        self.channels_last = channels_last
        self.compile = compile
        self.tf32 = tf32
        self.cudnn_benchmark = cudnn_benchmark
        self.config = dict(config) if config is not None else None
        self.name = name
        self.precision = Precision(precision, self.device)
        self.state: TrainState | None = None
        self.lr_selection = dict(lr_selection or {})
        if self.lr_selection:  # checked now, not when the finder runs
            from cadence.lr_finder.race import check_selection_options

            check_selection_options(self.lr_selection)
        self._log_csv = csv
        #: The trackers (``loggers`` with names resolved; ``tensorboard=True`` adds a TensorBoard logger).
        self.loggers = resolve_loggers(loggers, tensorboard=tensorboard)
        self._prepared = False
        self._sharded = False
        # set when the model is prepared (_prepare_model)
        self._forward: Callable[[Any], Any] = self.model
        self._ddp: nn.Module | None = None
        self._eval_model: nn.Module = self.model
        self._backend: dict[str, Any] = {}
        # set at the start of every fit (_start)
        self._distributed = False
        self._batches_per_epoch = 0
        self._time_origin = 0.0
        self._hooks: dict[str, list[Callable[[TrainState], None]]] = {}
        self._writer: RunWriter | None = None
        self._reset_fit()
        #: How the last ``fit`` ended: "completed", "stopped", "stalled" or "diverged" (None before).
        self.status: str | None = None
        self.fingerprint = dict(fingerprint) if fingerprint is not None else None
        self.log = log
        #: The checkpoint the last ``fit`` resumed from (None: a fresh start).
        self.resumed_from: Path | None = None

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: str | Path | None = "auto") -> TrainState:
        """Train until ``total_steps`` (or a callback's ``should_stop``); returns the final state.

        ``resume="latest"`` continues from the newest good checkpoint in ``run_dir/checkpoints`` (starting
        fresh when there is none; raising :class:`~cadence.train.checkpoint.CheckpointError` when every one
        is corrupt); a path resumes from that file. ``"auto"`` (the default) starts fresh, except in a process
        that ``torchrun --max-restarts`` restarted after a failure: there it is ``"latest"``, the newest
        checkpoint rank 0 finds, which every rank then loads.
        """
        saved, self.resumed_from, problems = find_checkpoint(resume, self.run_dir)
        for problem in problems:
            self._note(f"{problem}; skipping it", problem=True)
        state = self._start(saved)
        self._hooks = hook_table([*self.callbacks, *progress_callbacks(self.progress, state.is_main_process)])
        status, error = "completed", None
        try:
            self._call("on_fit_start", state)
            if saved is not None:  # after on_fit_start, so the RNG streams continue exactly
                restore_rank_rng(saved.rng, self.seed, state.rank, state.step)
            # DDP's gradient all_reduce runs inside backward(): a rank that does not arrive shows up there
            with distributed.named_timeouts(lambda: f"a collective at step {state.step}"):
                while state.step < state.total_steps and not state.should_stop:
                    self._run_epoch(state)
            if self._divergence is not None:
                status = "diverged"
            else:
                if state.should_stop and state.step < state.total_steps:
                    status = "stopped"
                else:
                    error = stall_message(
                        steps=state.step,
                        loss_start=state.loss_start,
                        loss_average=state.loss_average,
                        metrics=state.metrics,
                        num_classes=self.num_classes,
                        lr_peak=self._peak_lr(state.step),
                        precision=self.precision.mode,
                    )
                    if error is not None:
                        status = "stalled"
                        state.stop_reason = error
                        self._note(error, problem=True)
                if self._checkpointing and self._last_checkpoint_step != state.step:
                    self._save_checkpoint(state)
        except BaseException as exception:
            with contextlib.suppress(OSError):  # e.g. a full disk: the original error is the one to see
                self._finish(state, "failed", f"{type(exception).__name__}: {exception}", call_end=False)
            raise
        self.status = status
        self._finish(state, status, str(self._divergence) if self._divergence else error, call_end=True)
        if self._divergence is not None and self.on_divergence == "raise":
            raise self._divergence
        return state

    def _run_epoch(self, state: TrainState) -> None:
        self._call("on_epoch_start", state)
        self.model.train()
        group_size = micro = 0
        loss_sum: torch.Tensor | None = None
        completed = True  # False when a stop or the step budget ends the loop before the data does
        batches, self._epoch_rng = epoch_iterator(
            self.train_data, state.epoch, state.batch_index, self._resume_epoch_rng
        )
        self._resume_epoch_rng = None  # only the first epoch after a resume replays the generator
        for batch in batches:
            if micro == 0:  # a new optimizer step: its hyperparameters hold for all of its micro-batches
                group_size = min(self.accumulation_steps, self._batches_per_epoch - state.batch_index)
                state.hyperparams = state.pipeline.apply(self.optimizer, state.step)
                loss_sum = None
            state.batch = self._prepare_batch(batch)
            self._call("on_batch_start", state)
            inputs, targets = state.batch
            # DDP all-reduces, FSDP reduce-scatters, once per optimizer step: after its last micro-batch
            final = micro == group_size - 1
            with gradient_sync(self._ddp or self.model, final=final, group_size=group_size):
                state.outputs, state.loss = backward_micro_batch(
                    self._forward, self.loss_fn, inputs, targets, self.precision, group_size
                )
            self._call("on_after_backward", state)
            detached = state.loss.detach()
            loss_sum = detached if loss_sum is None else loss_sum + detached
            state.batch_index += 1
            micro += 1
            if micro == group_size:
                micro = 0
                self._optimizer_step(state, loss_sum / group_size if group_size > 1 else loss_sum)
                if state.should_stop or state.step >= state.total_steps:
                    completed = state.batch_index >= self._batches_per_epoch
                    break
        if micro:  # the data ran out inside a group (an iterable shorter than it said)
            self._optimizer_step(state, loss_sum / micro)
        state.batch = state.outputs = state.loss = None
        self._end_epoch(state, completed)

    def _optimizer_step(self, state: TrainState, loss: torch.Tensor) -> None:
        loss = loss.detach()
        loss_now: float | None = None
        if self.log_every_n_steps == 1:  # read before the update, so a non-finite loss is never applied
            loss_now = self._read_pending(state, current=loss)
            if loss_now is None or not math.isfinite(loss_now):
                self.optimizer.zero_grad(set_to_none=True)
                return
        if state.frozen and not state.freeze_by_requires_grad:
            drop_gradients_(state.frozen)  # frozen layers keep requires_grad under compile: no update
        parameters = self.model.parameters() if self.grad_clip is not None else None
        applied = self.precision.apply_step(self.optimizer, parameters, self.grad_clip)
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.wall_time = time.perf_counter() - self._time_origin
        record = records.train_record(
            state, epoch=self._epoch_position(state), lr=self._lr(state), loss=math.nan, skipped=False
        )
        self._reads.add(record, loss if loss_now is None else loss_now, applied)
        if state.step % self.log_every_n_steps == 0 or state.step >= state.total_steps:
            self._read_pending(state)
        self._call("on_step_end", state)
        if self.checkpoint_every_steps and state.step % self.checkpoint_every_steps == 0:
            self._save_checkpoint(state)

    def _read_pending(self, state: TrainState, current: torch.Tensor | None = None) -> float | None:
        """Read and log what the steps since the last read left on the device (:class:`LossReads`).

        ``current`` is the loss of the step about to be applied (``log_every_n_steps=1``); its value is
        returned (mean over processes), or None when a loss was not finite (the run then diverged).
        """
        value, non_finite = self._reads.read(
            state, self._writer.log, current=current, epoch=self._epoch_position(state)
        )
        if non_finite is not None:
            self._diverge(
                state, non_finite.value, step=non_finite.step, epoch=non_finite.epoch, lr=non_finite.lr
            )
            return None
        return value

    def _end_epoch(self, state: TrainState, completed: bool) -> None:
        if self._divergence is None:
            self._read_pending(state)  # a divergence is known before evaluating or checkpointing
        finished = state.step >= state.total_steps or state.should_stop
        every = self.eval_every_epochs
        evaluate = self.eval_data is not None and self._divergence is None
        if evaluate and ((every and (state.epoch + 1) % every == 0) or finished):
            state.metrics = self.evaluate(self.eval_data)
            records.update_best(self._best, state.metrics)
            elapsed = time.perf_counter() - self._time_origin
            self._writer.log(records.eval_record(state, epoch=self._epoch_position(state), time=elapsed))
            self._writer.flush()
            self._call("on_eval_end", state)
        self._call("on_epoch_end", state)
        if not completed:
            # Stopped inside the epoch: the counters keep pointing at the next unseen batch, so a resume
            # from the final checkpoint continues this epoch instead of skipping the rest of it.
            return
        state.epoch += 1
        state.batch_index = 0
        every = self.checkpoint_every_epochs
        if every and state.epoch % every == 0 and self._divergence is None:
            self._save_checkpoint(state)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, data: Any, model: nn.Module | None = None) -> dict[str, float]:
        """Mean loss and metrics of ``model`` (the trained one by default) over ``data``, prefixed ``val_``.

        Runs in eval mode under the run's autocast (see :func:`cadence.train.evaluation.evaluate_model`);
        under ``torch.distributed`` the results are averaged over processes by sample count.
        """
        self._prepare_model()
        # the run's own model evaluates through the same compiled module as training, when compiled
        model = self._eval_model if model is None or model is self.model else model
        classes = None
        if self.label_smoothing:  # the loss was trained on soft targets: give it one-hot rows
            classes = self.num_classes or output_classes(model, data, self.device, self.channels_last)
        return evaluate_model(
            model,
            data,
            self.loss_fn,
            metrics=self.metrics,
            device=self.device,
            precision=self.precision,
            channels_last=self.channels_last,
            one_hot_classes=classes,
        )

    # ------------------------------------------------------------------ setup and teardown

    def _start(self, saved: CheckpointRecord | None) -> TrainState:
        self._reset_fit()
        self._distributed = distributed.is_distributed()
        rank, world_size = distributed.get_rank(), distributed.get_world_size()
        self._prepare_model()
        steps_per_epoch, total_steps = self._plan_steps()
        state = TrainState(
            model=self.model,
            optimizer=self.optimizer,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            accumulation_steps=self.accumulation_steps,
            device=self.device,
            run_dir=self.run_dir,
            seed=self.seed,
            num_classes=self.num_classes,
            rank=rank,
            world_size=world_size,
            freeze_by_requires_grad=self.compile is False,  # compiled: no recompile per freezing stage
            evaluate=lambda model, data: self.evaluate(data, model=model),
            eval_data=self.eval_data,
            train_data=self.train_data,
        )
        self.state = state
        seed_rank(self.seed, rank)  # each rank its own dropout/augmentation stream; seed + 0 on rank 0
        if self.label_smoothing and self.num_classes is None:
            classes = infer_num_classes(self.model, self.train_data, self.device, self.channels_last)
            self.num_classes = state.num_classes = classes
        self._reads = LossReads(distributed=self._distributed, num_classes=self.num_classes)
        self.optimizer.zero_grad(set_to_none=True)
        fingerprint = self.fingerprint or records.trainer_fingerprint(self, state)
        if saved is None:
            self._resolve_auto_schedules()
        else:
            self._load_checkpoint(state, saved)
            self._note(f"resumed from step {state.step} (checkpoint {self.resumed_from})")
            changed = records.changed_fingerprint_keys(self.run_dir, fingerprint)
            if changed:
                more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
                self._note(f"resuming with changed settings: {', '.join(changed[:8])}{more}", problem=True)
        if any(needs_lr_finder(schedule) for schedule in self.schedules.values()):
            raise ConfigError("schedules: an 'auto' learning rate was not resolved by the LR finder")
        state.schedules = dict(self.schedules)
        # Techniques register their replacements and per-group modifiers on it in on_fit_start.
        state.pipeline = HyperparamPipeline(self.schedules)
        self._writer = records.open_run(
            state,
            saved,
            config=self.config,
            csv=self._log_csv,
            loggers=self.loggers,
            name=self.name,
            schedules=self.schedules,
            batches_per_epoch=self._batches_per_epoch,
            precision=self.precision.mode,
            grad_clip=self.grad_clip,
            label_smoothing=self.label_smoothing,
            callbacks=self.callbacks,
            fingerprint=fingerprint,
            backend=self._backend,
        )
        self._time_origin = time.perf_counter() - state.wall_time
        return state

    def _reset_fit(self) -> None:
        """The bookkeeping of one fit, fresh (at construction and at the start of every ``fit``)."""
        self._divergence: DivergenceError | None = None
        self._reads = LossReads()
        self._best: dict[str, float] = {}
        self._last_checkpoint_step = -1
        self._epoch_rng: torch.Tensor | None = None
        self._resume_epoch_rng: torch.Tensor | None = None
        self._auto_resolved = False

    def _plan_steps(self) -> tuple[int, int]:
        """Shard the training data (once) and return ``(steps_per_epoch, total_steps)``."""
        if not self._sharded:
            self.train_data = shard_train_data(self.train_data, self.seed)
            self._sharded = True
        self._batches_per_epoch = count_train_batches(self.train_data)
        steps_per_epoch = math.ceil(self._batches_per_epoch / self.accumulation_steps)
        total_steps = self.total_steps if self.total_steps is not None else self.epochs * steps_per_epoch
        return steps_per_epoch, total_steps

    def _prepare_model(self) -> None:
        if self._prepared:
            return
        arguments = compile_arguments(self.compile)
        backend = apply_backend_settings(self.device, tf32=self.tf32, cudnn_benchmark=self.cudnn_benchmark)
        self._backend = {"compile": arguments if arguments is not None else False, **backend}
        self._forward, self._ddp, self._eval_model = prepare_model(
            self.model,
            self.device,
            channels_last=self.channels_last,
            compile=arguments,
            callbacks=self.callbacks,
            strategy=self.strategy,
            precision=self.precision.mode,
            optimizer=self.optimizer,
        )
        self._prepared = True

    def _finish(self, state: TrainState, status: str, error: str | None, *, call_end: bool) -> None:
        state.wall_time = time.perf_counter() - self._time_origin
        summary = records.fit_summary(state, status, self._best)
        self._writer.flush()
        self._writer.write_summary(summary)  # before on_fit_end: a failing callback leaves a summary
        try:
            if call_end:
                self._call("on_fit_end", state)
        finally:
            state.wall_time = time.perf_counter() - self._time_origin
            extra = {**summary["extra"], **state.summary_extra}  # what the callbacks reported
            self._writer.write_summary({**summary, "wall_time": state.wall_time, "extra": extra})
            self._writer.finish(status, error, wall_time=state.wall_time)

    # ------------------------------------------------------------------ pieces of the loop

    def _note(self, line: str, *, problem: bool = False) -> None:
        if not distributed.is_main_process():
            return
        if self.log is not None:
            self.log(line)
        elif problem:
            warnings.warn(line, RuntimeWarning, stacklevel=3)

    def _call(self, hook: str, state: TrainState) -> None:
        for method in self._hooks[hook]:
            method(state)

    def _prepare_batch(self, batch: Any) -> tuple[Any, Any]:
        return prepare_batch(
            batch,
            self.device,
            channels_last=self.channels_last,
            label_smoothing=self.label_smoothing,
            num_classes=self.num_classes,
            label_errors=self._reads.label_errors,  # read with the losses, not per batch
        )

    def _epoch_position(self, state: TrainState) -> float:
        return state.epoch + state.batch_index / self._batches_per_epoch

    def _lr(self, state: TrainState) -> float:
        # The scheduled value of this step, else what the optimizer holds (no "lr" schedule given).
        return state.hyperparams.get("lr", self.optimizer.param_groups[0]["lr"])

    def _peak_lr(self, steps: int) -> float | None:
        """The largest scheduled LR of the first ``steps`` steps (derived from the schedule: the clock is
        ``step``), sampled at no more than about 2000 steps; the optimizer's LR without an "lr" schedule."""
        schedule = self.schedules.get("lr")
        if schedule is None:
            return float(self.optimizer.param_groups[0]["lr"])
        if not callable(schedule):
            return float(schedule)
        return max((float(schedule(step)) for step in range(0, steps, max(1, steps // 2000))), default=None)

    def _diverge(
        self, state: TrainState, loss_value: float, *, step: int, epoch: float, lr: float | None
    ) -> None:
        lr = self._lr(state) if lr is None else lr
        last = checkpoints.latest_checkpoint(RunDir(self.run_dir).checkpoints_dir) if self.run_dir else None
        if step == state.step:
            applied = "the update was not applied"
        else:  # found at a later read: the updates in between were applied
            applied = (
                f"found at step {state.step} (the loss is read every log_every_n_steps="
                f"{self.log_every_n_steps} steps), so the updates of steps {step} to {state.step - 1} were "
                "applied and the parameters are likely not finite"
            )
        message = (
            f"training diverged at step {step} (epoch {epoch:.2f}): the loss is {loss_value} with lr={lr:g}; "
            f"{applied}. Try a lower learning rate"
            + (f"; the last good checkpoint is {last}" if last else "")
        )
        self._divergence = DivergenceError(message, step=step, lr=lr)
        self._reads.clear()
        state.should_stop = True
        state.stop_reason = message

    # ------------------------------------------------------------------ schedules and checkpoints

    def hyperparams_at(self, step: int) -> list[dict[str, float]]:
        """The values written into each param group at ``step``: ``[{"lr": ..., "momentum": ...}, ...]``.

        After (or during) ``fit`` this is the run's pipeline, with the techniques' modifiers registered at fit
        start (FreezeOut, gradual unfreezing, SWA); before it, the Trainer's schedules alone.
        """
        pipeline = self.state.pipeline if self.state is not None else HyperparamPipeline(self.schedules)
        return pipeline.group_values(self.optimizer, step)

    def step_options(self) -> dict[str, Any]:
        """The arguments that shape one training step, for loops that must train exactly like this one
        (the LR race trains its candidates with them)."""
        return {
            "precision": self.precision_mode,
            "grad_clip": self.grad_clip,
            "accumulation_steps": self.accumulation_steps,
            "label_smoothing": self.label_smoothing,
            "num_classes": self.num_classes,
            "device": self.device,
            "channels_last": self.channels_last,
            "metrics": self.metrics,
        }

    def select_lr(self, record_dir: str | Path | None = None) -> Any:
        """Choose every ``"auto"`` learning rate exactly as :meth:`fit` would, without training the run.

        Returns the :class:`~cadence.lr_finder.LRSelection` (``None`` when no schedule is ``"auto"`` or a
        record in ``record_dir`` was reused) and leaves the schedules resolved. ``cadence find-lr`` calls
        this, so it reports the value a run of the same config uses.
        """
        if not any(needs_lr_finder(schedule) for schedule in self.schedules.values()):
            return None
        from cadence.lr_finder import resolve_auto_schedules  # only runs that ask for an "auto" LR need it

        self._prepare_model()
        _, total_steps = self._plan_steps()
        if self.label_smoothing and self.num_classes is None:
            self.num_classes = infer_num_classes(self.model, self.train_data, self.device, self.channels_last)
        show = self.progress not in (False, "off") and distributed.get_rank() == 0
        schedules, selection = resolve_auto_schedules(
            self.schedules,
            model=self.model,
            optimizer=self.optimizer,
            loss_fn=self.loss_fn,
            train_data=self.train_data,
            total_steps=total_steps,
            run_dir=record_dir,
            selection_options=self.lr_selection,
            trainer_options=self.step_options(),
            callbacks=[
                callback for callback in self.callbacks if getattr(callback, "shapes_training", False)
            ],
            seed=self.seed,
            log=(self.log or (lambda message: print(message, flush=True))) if show else None,
        )
        self.schedules = schedules
        self._auto_resolved = True
        return selection

    def _resolve_auto_schedules(self) -> None:
        self.select_lr(self.run_dir)

    @property
    def _checkpointing(self) -> bool:
        return self.run_dir is not None and bool(self.checkpoint_every_steps or self.checkpoint_every_epochs)

    def _save_checkpoint(self, state: TrainState) -> None:
        if self._divergence is None:
            self._read_pending(state)  # every rank: the read may all_reduce
        if self._divergence is not None:
            return  # the parameters may hold the diverged updates
        self._last_checkpoint_step = state.step
        if self.run_dir is None or not self._checkpointing:
            return
        sharded = None
        if distributed.is_sharded(self.model):  # every rank writes its own shards
            sharded = save_shards(
                self.model, self.optimizer, RunDir(self.run_dir).checkpoints_dir, state.step, self.callbacks
            )
        if not state.is_main_process:
            return
        payload = checkpoint_payload(
            state,
            model=self.model,
            optimizer=self.optimizer,
            precision=self.precision,
            callbacks=self.callbacks,
            best=self._best,
            metrics_lines=self._writer.flush(),
            # Only the LR finder's results are stored: every other schedule comes from the caller again.
            schedules=schedule_configs(self.schedules) if self._auto_resolved else {},
            epoch_rng=self._epoch_rng,
            sharded=sharded,
        )
        write_checkpoint(payload, RunDir(self.run_dir).checkpoints_dir, state.step, self.keep_checkpoints)

    def _load_checkpoint(self, state: TrainState, saved: CheckpointRecord) -> None:
        self._best = restore_checkpoint(
            saved,
            state,
            model=self.model,
            optimizer=self.optimizer,
            precision=self.precision,
            callbacks=self.callbacks,
            path=self.resumed_from,
        )
        self._last_checkpoint_step = state.step
        self._resume_epoch_rng = saved.epoch_rng
        if saved.trainer.schedules:
            restore_schedules(self.schedules, saved.trainer.schedules)
            self._auto_resolved = True
        self._resolve_auto_schedules()  # a checkpoint from before the finder's result was stored
