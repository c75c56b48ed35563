"""The Trainer: a short, explicit loop that applies schedules per optimizer step and never loses work."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cadence import distributed
from cadence.errors import ConfigError, DivergenceError, require
from cadence.hyperparams import ScheduleOrValue, set_hyperparams
from cadence.precision import Precision
from cadence.tracking.run import RunWriter, git_revision, read_json
from cadence.train import checkpoint as checkpoints
from cadence.train.batches import count_batches, epoch_batches, move_to_device, split_batch
from cadence.train.callback import HOOKS, Callback
from cadence.train.evaluation import accuracy, evaluate_model
from cadence.train.state import TrainState

__all__ = ["Trainer", "accuracy"]

SCHEDULE_NAMES = ("lr", "momentum", "weight_decay")
DIVERGENCE_MODES = ("stop", "raise")
PROGRESS_MODES = ("auto", True, False, None, "bar", "lines", "off")
_NO_CONTEXT = contextlib.nullcontext()  # reusable: no allocation per micro-batch


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_data``; schedules are applied before every update.

    The whole loop, with its hook points (``*_end`` hooks run over the callbacks in reverse order)::

        on_fit_start                          # after a resume too, with the counters restored
        while step < total_steps and not should_stop:
            on_epoch_start
            for each group of accumulation_steps micro-batches (from batch_index on):
                hyperparams = set_hyperparams(optimizer, step, **schedules)
                for each micro-batch:
                    batch = to_device(batch); integer targets -> smoothed one-hot if label_smoothing
                    on_batch_start            # may replace state.batch (mixup)
                    with autocast: loss = loss_fn(model(inputs), targets)
                    backward(loss / micro-batches in the group)   # DDP: no_sync() but on the last
                    on_after_backward
                if loss is NaN/inf: stop (or raise) with DivergenceError, no update
                unscale -> clip grad norm -> optimizer.step() -> scaler update; zero_grad
                step += 1; log {"kind": "train", ...}
                on_step_end
                checkpoint every checkpoint_every_steps
            evaluate every eval_every_epochs (and at the end); on_eval_end
            on_epoch_end
            epoch += 1; checkpoint every checkpoint_every_epochs
        on_fit_end

    ``step`` counts optimizer updates, not micro-batches: with ``accumulation_steps=k`` an epoch of ``B``
    batches has ``ceil(B / k)`` steps, and ``total_steps`` (given, or ``epochs × steps_per_epoch``) is what
    the schedules see. :class:`~cadence.train.state.TrainState` is the single source of truth; callbacks read
    and write its fields only.

    ``fit`` seeds Python's ``random``, numpy and torch with ``seed`` before anything else (the model's
    initialisation happened before, under the caller's seed).

    Resume: ``fit(resume="latest")`` (or a checkpoint path) restores model, optimizer, loss scaler, callback
    states, counters, the position in the data order and every RNG state, and continues as if never stopped:
    on CPU the final parameters are bitwise identical to an uninterrupted run.

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
    on a terminal, plain lines otherwise), or ``False``; ``config`` is written to ``run_dir/config.toml``.
    Under ``torch.distributed`` (world size > 1) the model is wrapped in DDP, logged metrics are averaged over
    processes and only rank 0 writes files.
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
        channels_last: bool = False,
        compile: bool = False,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        csv: bool = False,
        tensorboard: bool = False,
    ) -> None:
        callbacks = list(callbacks)
        if epochs is None and total_steps is None:
            raise ConfigError("Trainer: give epochs or total_steps (the number of optimizer updates)")
        _check_positive("epochs", epochs)
        _check_positive("total_steps", total_steps)
        _check_positive("accumulation_steps", accumulation_steps)
        _check_positive("checkpoint_every_steps", checkpoint_every_steps)
        _check_positive("checkpoint_every_epochs", checkpoint_every_epochs)
        _check_positive("eval_every_epochs", eval_every_epochs)
        _check_positive("keep_checkpoints", keep_checkpoints)
        unknown = sorted(set(schedules or {}) - set(SCHEDULE_NAMES))
        if unknown:
            raise ConfigError(
                f"schedules: unknown hyperparameter(s) {unknown}; allowed: {list(SCHEDULE_NAMES)}"
            )
        if on_divergence not in DIVERGENCE_MODES:
            raise ConfigError(f"on_divergence must be one of {list(DIVERGENCE_MODES)}, got {on_divergence!r}")
        if progress not in PROGRESS_MODES:
            raise ConfigError(f"progress must be 'auto', True or False, got {progress!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing=}")
        if grad_clip is not None and not grad_clip > 0:
            raise ConfigError(f"grad_clip must be a positive number or None, got {grad_clip=}")
        for metric in metrics:
            if not callable(metric) and metric != "accuracy":
                raise ConfigError(f"metrics: unknown metric {metric!r}; allowed: 'accuracy' or a callable")
        if tensorboard:
            require("tensorboard", "tensorboard", "TensorBoard logging (tensorboard=True)")
        soft_sources = [f"label_smoothing={label_smoothing}"] if label_smoothing else []
        soft_sources += [type(c).__name__ for c in callbacks if getattr(c, "produces_soft_targets", False)]
        if soft_sources:
            from cadence.regularization import check_soft_target_loss

            check_soft_target_loss(loss_fn, purpose=" and ".join(soft_sources))
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
        self.device = distributed.default_device() if device == "auto" else torch.device(device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = seed
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes if num_classes is not None else _data_num_classes(train_data)
        self.checkpoint_every_steps = checkpoint_every_steps
        self.checkpoint_every_epochs = checkpoint_every_epochs
        self.keep_checkpoints = keep_checkpoints
        self.eval_every_epochs = eval_every_epochs
        self.progress = progress
        self.on_divergence = on_divergence
        self.channels_last = channels_last
        self.compile = compile
        self.config = dict(config) if config is not None else None
        self.name = name
        self.precision = Precision(precision, self.device)
        self.state: TrainState | None = None
        self._log_csv = csv
        self._tensorboard = tensorboard
        self._prepared = False

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: str | Path | None = None) -> TrainState:
        """Train until ``total_steps`` (or a callback's ``should_stop``); returns the final state.

        ``resume="latest"`` continues from the newest checkpoint in ``run_dir/checkpoints`` (starting fresh
        when there is none); a path resumes from that file.
        """
        saved = self._find_checkpoint(resume)
        state = self._start(saved)
        self._hooks = _hook_table([*self.callbacks, *self._internal_callbacks()])
        status, error = "completed", None
        try:
            self._call("on_fit_start", state)
            if saved is not None:  # after on_fit_start, so the RNG streams continue exactly
                checkpoints.restore_rng_state(saved["rng"])
            while state.step < state.total_steps and not state.should_stop:
                self._run_epoch(state)
            if self._divergence is not None:
                status = "diverged"
            else:
                if state.should_stop and state.step < state.total_steps:
                    status = "stopped"
                if self._checkpointing and self._last_checkpoint_step != state.step:
                    self._save_checkpoint(state)
        except BaseException as exception:
            self._finish(state, "failed", f"{type(exception).__name__}: {exception}", call_end=False)
            raise
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
        for batch in self._epoch_iterator(state):
            if micro == 0:  # a new optimizer step: its hyperparameters hold for all of its micro-batches
                group_size = min(self.accumulation_steps, self._batches_per_epoch - state.batch_index)
                state.hyperparams = set_hyperparams(self.optimizer, state.step, **self.schedules)
                loss_sum = None
            state.batch = self._prepare_batch(batch)
            self._call("on_batch_start", state)
            inputs, targets = state.batch
            synchronise = micro == group_size - 1 or self._ddp is None
            with _NO_CONTEXT if synchronise else self._ddp.no_sync():
                with self.precision.autocast():
                    state.outputs = self._forward(inputs)
                    state.loss = self.loss_fn(state.outputs, targets)
                # Dividing by the group size makes k accumulated micro-batches one mean-loss update.
                self.precision.backward(state.loss / group_size if group_size > 1 else state.loss)
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
        loss_value = loss.item()  # the one host synchronisation per step: logging and divergence need it
        if self._distributed:
            loss_value = distributed.all_reduce_mean({"loss": loss_value})["loss"]
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(set_to_none=True)
            self._diverge(state, loss_value)
            return
        parameters = self.model.parameters() if self.grad_clip is not None else None
        applied = self.precision.step(self.optimizer, parameters, self.grad_clip)
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.last_loss = loss_value
        record = {"kind": "train", "step": state.step, "epoch": self._epoch_position(state)}
        record["lr"] = state.hyperparams.get("lr", self.optimizer.param_groups[0]["lr"])
        if "momentum" in state.hyperparams:
            record["momentum"] = state.hyperparams["momentum"]
        record["loss"] = loss_value
        if not applied:
            state.skipped_steps += 1
            record["skipped"] = True
        record["time"] = state.wall_time = time.perf_counter() - self._time_origin
        self._writer.log(record)
        self._call("on_step_end", state)
        if self.checkpoint_every_steps and state.step % self.checkpoint_every_steps == 0:
            self._save_checkpoint(state)

    def _end_epoch(self, state: TrainState, completed: bool) -> None:
        finished = state.step >= state.total_steps or state.should_stop
        every = self.eval_every_epochs
        evaluate = self.eval_data is not None and self._divergence is None
        if evaluate and ((every and (state.epoch + 1) % every == 0) or finished):
            state.metrics = self.evaluate(self.eval_data)
            self._record_evaluation(state)
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
        model = model if model is not None else self.model
        classes = None
        if self.label_smoothing:  # the loss was trained on soft targets: give it one-hot rows
            classes = self.num_classes or _output_classes(model, data, self.device, self.channels_last)
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

    def _record_evaluation(self, state: TrainState) -> None:
        for key, value in state.metrics.items():
            better = min if "loss" in key else max
            self._best[key] = value if key not in self._best else better(self._best[key], value)
        time_now = time.perf_counter() - self._time_origin
        record = {"kind": "eval", "step": state.step, "epoch": self._epoch_position(state), "time": time_now}
        self._writer.log({**record, **state.metrics})
        self._writer.flush()

    # ------------------------------------------------------------------ setup and teardown

    def _start(self, saved: dict[str, Any] | None) -> TrainState:
        self._divergence: DivergenceError | None = None
        self._best: dict[str, float] = {}
        self._last_checkpoint_step = -1
        self._epoch_rng: torch.Tensor | None = None
        self._resume_epoch_rng: torch.Tensor | None = None
        self._auto_resolved = False
        self._distributed = distributed.is_distributed()
        rank, world_size = distributed.get_rank(), distributed.get_world_size()
        self._prepare_model()
        if self._distributed and isinstance(self.train_data, torch.utils.data.DataLoader):
            # Each rank reads its own disjoint shard, reshuffled per epoch. Evaluation data is not sharded
            # this way: DistributedSampler pads with repeated examples, which would bias the metrics.
            self.train_data = distributed.shard_dataloader(self.train_data, seed=self.seed)
        self._batches_per_epoch = count_batches(self.train_data)
        if self._batches_per_epoch == 0:
            raise ConfigError("train_data yielded no batches")
        steps_per_epoch = math.ceil(self._batches_per_epoch / self.accumulation_steps)
        total_steps = self.total_steps if self.total_steps is not None else self.epochs * steps_per_epoch
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
            evaluate=lambda model, data: self.evaluate(data, model=model),
            eval_data=self.eval_data,
            train_data=self.train_data,
        )
        self.state = state
        _seed_everything(self.seed)
        if self.label_smoothing and self.num_classes is None:
            self.num_classes = state.num_classes = self._infer_num_classes()
        self.optimizer.zero_grad(set_to_none=True)
        if saved is None:
            self._resolve_auto_schedules()
        else:
            self._load_checkpoint(state, saved)
        if any(getattr(schedule, "needs_lr_finder", False) for schedule in self.schedules.values()):
            raise ConfigError("schedules: an 'auto' learning rate was not resolved by the LR finder")
        state.schedules = dict(self.schedules)
        self._writer = RunWriter(
            self.run_dir if self.run_dir is not None else Path("."),
            enabled=self.run_dir is not None and state.is_main_process,
            csv=self._log_csv,
            tensorboard=self._tensorboard,
        )
        meta = self._meta(state)
        if saved is not None and self._writer.enabled and (self.run_dir / "meta.json").exists():
            meta["started_at"] = read_json(self.run_dir / "meta.json").get("started_at")
        keep = saved["trainer"].get("metrics_lines") if saved is not None else None
        self._writer.start(meta, self.config, keep_lines=keep)
        self._time_origin = time.perf_counter() - state.wall_time
        return state

    def _prepare_model(self) -> None:
        if self._prepared:
            return
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Under DDP, callbacks that freeze or unfreeze layers mid-run need every parameter registered.
        trainable_changes = distributed.is_distributed() and distributed.changes_trainable(self.callbacks)
        forward_model = distributed.wrap_model(self.model, self.device, trainable_changes=trainable_changes)
        self._ddp = forward_model if forward_model is not self.model else None
        if self.compile:
            forward_model = torch.compile(forward_model)
        self._forward = forward_model
        self._prepared = True

    def _meta(self, state: TrainState) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": str(self.device),
            "seed": self.seed,
            "world_size": state.world_size,
            "git_revision": git_revision() if self._writer.enabled else None,
            "schedules": {key: repr(value) for key, value in self.schedules.items()},
            "total_steps": state.total_steps,
            "steps_per_epoch": state.steps_per_epoch,
            "batches_per_epoch": self._batches_per_epoch,
            "accumulation_steps": self.accumulation_steps,
            "precision": self.precision.mode,
            "grad_clip": self.grad_clip,
            "label_smoothing": self.label_smoothing,
            "callbacks": [type(callback).__name__ for callback in self.callbacks],
            "finished_at": None,
            "wall_time": None,
        }

    def _internal_callbacks(self) -> list[Callback]:
        if self.progress in (False, None, "off") or not self.state.is_main_process:
            return []
        from cadence.callbacks.progress import ProgressBar

        return [ProgressBar(mode="auto" if self.progress in ("auto", True) else self.progress)]

    def _finish(self, state: TrainState, status: str, error: str | None, *, call_end: bool) -> None:
        state.wall_time = time.perf_counter() - self._time_origin
        summary = {
            "status": status,
            "steps": state.step,
            "wall_time": state.wall_time,
            "final": {"loss": state.last_loss, **state.metrics},
            "best": dict(self._best),
            "skipped_steps": state.skipped_steps,
            "extra": {},
        }
        if status == "stopped" and state.stop_reason:
            summary["extra"]["stop_reason"] = state.stop_reason
        self._writer.flush()
        self._writer.write_summary(summary)  # before on_fit_end, so callbacks can add to "extra"
        try:
            if call_end:
                self._call("on_fit_end", state)
        finally:
            state.wall_time = time.perf_counter() - self._time_origin
            self._writer.write_summary({**summary, "wall_time": state.wall_time})
            self._writer.finish(status, error, wall_time=state.wall_time)

    # ------------------------------------------------------------------ pieces of the loop

    def _call(self, hook: str, state: TrainState) -> None:
        for method in self._hooks[hook]:
            method(state)

    def _epoch_iterator(self, state: TrainState) -> Any:
        if state.batch_index and self._resume_epoch_rng is not None:
            # Mid-epoch resume: replay the generator state of the epoch's start while skipping the consumed
            # batches (a DataLoader shuffles from it), then continue with the checkpoint's state.
            current = torch.get_rng_state()
            torch.set_rng_state(self._resume_epoch_rng)
            self._epoch_rng = self._resume_epoch_rng
            iterator = epoch_batches(self.train_data, state.epoch, state.batch_index)
            torch.set_rng_state(current)
        else:
            self._epoch_rng = torch.get_rng_state()
            iterator = epoch_batches(self.train_data, state.epoch, state.batch_index)
        self._resume_epoch_rng = None
        return iterator

    def _prepare_batch(self, batch: Any) -> tuple[Any, Any]:
        inputs, targets = split_batch(batch)
        inputs = move_to_device(inputs, self.device, self.channels_last)
        targets = move_to_device(targets, self.device)
        if self.label_smoothing and isinstance(targets, torch.Tensor) and not targets.is_floating_point():
            targets = self._one_hot(targets, None, smoothing=self.label_smoothing)
        return inputs, targets

    def _one_hot(self, targets: torch.Tensor, outputs: Any, smoothing: float) -> torch.Tensor:
        num_classes = self.num_classes
        if num_classes is None and isinstance(outputs, torch.Tensor):
            num_classes = outputs.shape[-1]
        return _one_hot(targets, int(num_classes), smoothing)

    def _infer_num_classes(self) -> int:
        # One forward pass in eval mode on the first batch; every RNG state is put back afterwards.
        rng = checkpoints.capture_rng_state()
        try:
            return _output_classes(self.model, self.train_data, self.device, self.channels_last)
        finally:
            checkpoints.restore_rng_state(rng)

    def _epoch_position(self, state: TrainState) -> float:
        return state.epoch + state.batch_index / self._batches_per_epoch

    def _diverge(self, state: TrainState, loss_value: float) -> None:
        lr = state.hyperparams.get("lr", self.optimizer.param_groups[0]["lr"])
        last = checkpoints.latest_checkpoint(self.run_dir / "checkpoints") if self.run_dir else None
        message = (
            f"training diverged at step {state.step} (epoch {self._epoch_position(state):.2f}): the loss is "
            f"{loss_value} with lr={lr:g}; the update was not applied. Try a lower learning rate"
            + (f"; the last good checkpoint is {last}" if last else "")
        )
        self._divergence = DivergenceError(message, step=state.step, lr=lr)
        state.should_stop = True
        state.stop_reason = message

    # ------------------------------------------------------------------ schedules and checkpoints

    def _resolve_auto_schedules(self) -> None:
        if not any(getattr(schedule, "needs_lr_finder", False) for schedule in self.schedules.values()):
            return
        from cadence.lr_finder import resolve_auto_schedules  # only runs that ask for an "auto" LR need it

        self.schedules = dict(
            resolve_auto_schedules(
                self.schedules,
                model=self.model,
                optimizer=self.optimizer,
                loss_fn=self.loss_fn,
                train_data=self.train_data,
                run_dir=self.run_dir,
                precision=self.precision.mode,
                accumulation_steps=self.accumulation_steps,
            )
        )
        self._auto_resolved = True

    @property
    def _checkpointing(self) -> bool:
        return self.run_dir is not None and bool(self.checkpoint_every_steps or self.checkpoint_every_epochs)

    def _find_checkpoint(self, resume: str | Path | None) -> dict[str, Any] | None:
        if resume is None:
            return None
        if resume == "latest":
            if self.run_dir is None:
                raise ConfigError("fit(resume='latest') needs run_dir, where the checkpoints are")
            path = checkpoints.latest_checkpoint(self.run_dir / "checkpoints")
            return None if path is None else checkpoints.load_checkpoint(path)
        return checkpoints.load_checkpoint(resume)

    def _save_checkpoint(self, state: TrainState) -> None:
        self._last_checkpoint_step = state.step
        if self.run_dir is None or not self._checkpointing or not state.is_main_process:
            return
        payload = {
            "format": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "precision": self.precision.state_dict(),
            "callbacks": [
                {"class": type(callback).__name__, "state": callback.state_dict()}
                for callback in self.callbacks
            ],
            "trainer": {
                "step": state.step,
                "epoch": state.epoch,
                "batch_index": state.batch_index,
                "skipped_steps": state.skipped_steps,
                "wall_time": state.wall_time,
                "last_loss": state.last_loss,
                "metrics": dict(state.metrics),
                "best": dict(self._best),
                "total_steps": state.total_steps,
                "world_size": state.world_size,
                "metrics_lines": self._writer.flush(),
                "schedules": self._schedule_configs(),
            },
            "rng": checkpoints.capture_rng_state(),
            "epoch_rng": self._epoch_rng,
        }
        directory = self.run_dir / "checkpoints"
        checkpoints.save_checkpoint(payload, checkpoints.checkpoint_path(directory, state.step))
        checkpoints.prune_checkpoints(directory, self.keep_checkpoints)

    def _schedule_configs(self) -> dict[str, Any]:
        # Schedules resolved by the LR finder are stored, so a resume does not run the finder again.
        if not getattr(self, "_auto_resolved", False):
            return {}
        from cadence.schedules import to_config

        configs = {}
        for key, value in self.schedules.items():
            with contextlib.suppress(
                Exception
            ):  # a schedule without a config form: the finder's record is reused
                configs[key] = to_config(value)
        return configs

    def _load_checkpoint(self, state: TrainState, saved: dict[str, Any]) -> None:
        trainer = saved["trainer"]
        distributed.check_world_size(trainer.get("world_size"), state.world_size)
        if trainer.get("total_steps") not in (None, state.total_steps):
            raise ConfigError(
                f"resume: the checkpoint is from a run of total_steps={trainer['total_steps']} but this run "
                f"has total_steps={state.total_steps}; resume with the same epochs/total_steps and data"
            )
        saved_callbacks = saved.get("callbacks", [])
        names = [type(callback).__name__ for callback in self.callbacks]
        if [entry["class"] for entry in saved_callbacks] != names:
            raise checkpoints.CheckpointError(
                f"resume: the checkpoint has callbacks {[entry['class'] for entry in saved_callbacks]} but "
                f"this run has {names}; pass the same callbacks in the same order"
            )
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.precision.load_state_dict(saved.get("precision", {}))
        for callback, entry in zip(self.callbacks, saved_callbacks):
            callback.load_state_dict(entry["state"])
        for field in ("step", "epoch", "batch_index", "skipped_steps", "wall_time", "last_loss"):
            setattr(state, field, trainer[field])
        state.metrics = dict(trainer.get("metrics", {}))
        self._best = dict(trainer.get("best", {}))
        self._last_checkpoint_step = state.step
        self._resume_epoch_rng = saved.get("epoch_rng")
        if trainer.get("schedules"):
            from cadence.schedules import from_config

            for key, config in trainer["schedules"].items():
                if getattr(self.schedules.get(key), "needs_lr_finder", False):
                    self.schedules[key] = from_config(config)
            self._auto_resolved = True
        self._resolve_auto_schedules()  # a checkpoint from before the finder's result was stored


def _one_hot(targets: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    from cadence.regularization import one_hot

    return one_hot(targets, num_classes, smoothing=smoothing)


def _hook_table(callbacks: list[Callback]) -> dict[str, list[Callable[[TrainState], None]]]:
    # Bound methods per hook, without the base class's no-ops: an unused hook costs nothing per step.
    table = {}
    for hook in HOOKS:
        ordered = list(reversed(callbacks)) if hook.endswith("_end") else callbacks
        table[hook] = [
            getattr(callback, hook)
            for callback in ordered
            if getattr(type(callback), hook, None) is not None
            and getattr(type(callback), hook) is not getattr(Callback, hook)
        ]
    return table


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _data_num_classes(data: Any) -> int | None:
    for holder in (data, getattr(data, "dataset", None)):
        value = getattr(holder, "num_classes", None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{name} must be a positive integer or None, got {name}={value!r}")


def _output_classes(model: nn.Module, data: Any, device: torch.device, channels_last: bool) -> int:
    """The last dimension of the model's output on the first batch of ``data`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            inputs, _ = split_batch(next(epoch_batches(data, 0)))
            outputs = model(move_to_device(inputs, device, channels_last))
    finally:
        model.train(was_training)
    if not isinstance(outputs, torch.Tensor) or outputs.dim() < 2:
        raise ConfigError("label_smoothing needs num_classes: pass num_classes=... to the Trainer")
    return int(outputs.shape[-1])
