"""Gradual unfreezing (ULMFiT) as a Trainer callback: which layer groups train is declared up front.

Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification" (2018), section 3.2: train the
last group first, then unfreeze one more group at a time from the output towards the input, each stage with
its own learning-rate policy. Here the stages are data::

    groups = layer_groups(model, n_groups=3)
    optimizer = torch.optim.AdamW(discriminative_lrs(groups, factor=2.6))      # all groups, up front
    unfreezing = GradualUnfreezing(groups=groups, stages=[
        {"at_epoch": 0, "groups": 1, "lr": one_cycle(max_lr=1e-2, total_steps=n)},   # head only
        {"at_epoch": 1, "groups": 2, "lr": 5e-3},
        {"at_epoch": 2, "groups": "all", "lr": one_cycle(max_lr=2e-3, total_steps=n)},
    ])

The trainable set and the LR are pure functions of ``state.step``, recomputed in ``on_fit_start``, so a
resumed run continues exactly; the callback stores nothing. A stage's ``lr``/``momentum`` schedule runs on
the stage's local clock (``step - stage_start``) and replaces the Trainer's schedule while the stage lasts
(a stage without one follows the Trainer's schedule on the run's clock). The callback writes no LR itself:
in ``on_fit_start`` it registers that replacement (``join`` of the stages' schedules) and, with
``train_bn=False`` and one param group per layer group, a 0/1 multiplier per group (0 while it is frozen) on
the run's :class:`~cadence.hyperparams.HyperparamPipeline`; each group gets ``lr · lr_scale · factor``, so
discriminative LRs compose. Frozen groups keep their param groups; they get no gradient and no update.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cadence.errors import ConfigError
from cadence.hyperparams import ScheduleOrValue, stage_schedule
from cadence.schedules.primitives import constant
from cadence.train.callback import Callback
from cadence.train.state import TrainState
from cadence.transfer.freezing import combine_freezing_, optimizer_group_index, set_norm_eval_
from cadence.transfer.param_groups import LayerGroup, layer_groups

__all__ = ["GradualUnfreezing", "Stage", "parse_stages"]

_START_KEYS = ("at_step", "at_epoch", "at")


@dataclass(frozen=True)
class Stage:
    """One stage: from ``start`` (a step, an epoch or a fraction, per ``unit``), train ``groups``."""

    start: float
    unit: str  # "step" | "epoch" | "fraction"
    groups: int | tuple[int, ...] | str
    lr: ScheduleOrValue | None = None
    momentum: ScheduleOrValue | None = None

    def start_step(self, total_steps: int, steps_per_epoch: int) -> int:
        if self.unit == "step":
            return int(self.start)
        if self.unit == "epoch":
            return round(self.start * steps_per_epoch)
        return round(self.start * total_steps)

    def trainable(self, n_groups: int) -> list[int]:
        if self.groups == "all":
            return list(range(n_groups))
        if isinstance(self.groups, int):
            return list(range(max(0, n_groups - self.groups), n_groups))
        return [index % n_groups for index in self.groups]


def _schedule(value: Any) -> ScheduleOrValue | None:
    """A stage's lr/momentum: a number, a schedule, or a schedule config dict (``{"name": "one_cycle", ...}``,
    as in TOML configs)."""
    if isinstance(value, Mapping):
        from cadence.schedules import from_config

        return from_config(value)
    return value


def parse_stages(stages: Sequence[Mapping[str, Any]]) -> list[Stage]:
    """Validate stage dicts.

    Each needs exactly one of ``at_step``/``at_epoch``/``at`` (fraction of training) and ``groups`` (the
    number of last groups to train, a list of group indices, or ``"all"``); ``lr``/``momentum`` are optional
    (a number, a schedule, or a schedule config dict such as ``{"name": "cosine", ...}``).
    """
    if not stages:
        raise ConfigError("GradualUnfreezing needs at least one stage")
    parsed = []
    for position, stage in enumerate(stages):
        if not isinstance(stage, Mapping):
            raise ConfigError(f"stage {position} must be a dict, got {stage!r}")
        unknown = set(stage) - {*_START_KEYS, "groups", "lr", "momentum"}
        if unknown:
            raise ConfigError(
                f"stage {position} has unknown keys {sorted(unknown)}; "
                "allowed: at_step, at_epoch, at, groups, lr, momentum"
            )
        starts = [key for key in _START_KEYS if key in stage]
        if len(starts) != 1:
            raise ConfigError(f"stage {position} needs exactly one of at_step, at_epoch, at; got {starts}")
        key = starts[0]
        value = stage[key]
        if not isinstance(value, (int, float)) or value < 0 or (key == "at" and value > 1):
            raise ConfigError(f"stage {position}: {key} must be a number >= 0 (at: a fraction in [0, 1])")
        groups = stage.get("groups")
        if isinstance(groups, bool) or not (
            groups == "all"
            or (isinstance(groups, int) and groups >= 1)
            or (isinstance(groups, (list, tuple)) and all(isinstance(i, int) for i in groups))
        ):
            raise ConfigError(
                f"stage {position}: groups must be a positive int (last n groups), a list of indices "
                f"or 'all', "
                f"got {groups!r}"
            )
        unit = {"at_step": "step", "at_epoch": "epoch", "at": "fraction"}[key]
        parsed.append(
            Stage(
                start=value,
                unit=unit,
                groups=tuple(groups) if isinstance(groups, list) else groups,
                lr=_schedule(stage.get("lr")),
                momentum=_schedule(stage.get("momentum")),
            )
        )
    return parsed


class GradualUnfreezing(Callback):
    """Train a growing set of layer groups, stage by stage; see the module docstring.

    Args:
        stages: list of stage dicts (see :func:`parse_stages`); the first must start at step 0.
        groups: the layer groups (from :func:`cadence.transfer.param_groups.layer_groups`); ``None`` computes
            ``layer_groups(model, n_groups=n_groups)`` at fit start.
        n_groups: used when ``groups`` is ``None``.
        train_bn: keep the normalization layers of frozen groups trainable and in train mode (fastai's
            default); ``False`` freezes them and puts them in eval mode, so their running statistics stay.
    """

    shapes_training = True
    changes_trainable = True

    def __init__(
        self,
        stages: Sequence[Mapping[str, Any]],
        groups: Sequence[LayerGroup] | None = None,
        *,
        n_groups: int | None = None,
        train_bn: bool = True,
    ) -> None:
        self.stages = parse_stages(stages)
        self.groups = list(groups) if groups is not None else None
        self.n_groups = n_groups
        self.train_bn = train_bn
        self._starts: list[int] = []
        self._active: int | None = None

    # The plan ---------------------------------------------------------------------------------------------

    def stage_starts(self, total_steps: int, steps_per_epoch: int) -> list[int]:
        """The step at which each stage begins."""
        starts = [stage.start_step(total_steps, steps_per_epoch) for stage in self.stages]
        if starts[0] != 0:
            raise ConfigError(
                f"the first GradualUnfreezing stage must start at step 0, it starts at {starts[0]}"
            )
        if any(later < earlier for earlier, later in itertools.pairwise(starts)):
            raise ConfigError(f"GradualUnfreezing stages must be in order of their start, got steps {starts}")
        return starts

    def stage_index(self, step: int) -> int:
        """Index of the stage in force at ``step``."""
        index = 0
        for position, start in enumerate(self._starts):
            if step >= start:
                index = position
        return index

    def trainable_groups(self, step: int) -> list[int]:
        """Indices of the groups trained at ``step``."""
        assert self.groups is not None
        return self.stages[self.stage_index(step)].trainable(len(self.groups))

    # Hooks ------------------------------------------------------------------------------------------------

    def on_fit_start(self, state: TrainState) -> None:
        if self.groups is None:
            self.groups = layer_groups(state.model, n_groups=self.n_groups)
        self._starts = self.stage_starts(state.total_steps, state.steps_per_epoch)
        self._active = None
        self._register(state)
        self._apply(state)

    def on_batch_start(self, state: TrainState) -> None:
        self._apply(state)

    def _register(self, state: TrainState) -> None:
        """Put the stages' LR/momentum and the frozen groups' zero LR into the run's pipeline."""
        assert self.groups is not None
        pipeline = state.pipeline
        for key in ("lr", "momentum"):
            values = [getattr(stage, key) for stage in self.stages]
            if all(value is None for value in values):
                continue
            schedule = stage_schedule(
                pipeline.schedule(key), list(zip(self._starts, values)), owner=f"GradualUnfreezing {key}"
            )
            pipeline.replace(key, schedule, owner="GradualUnfreezing")
        if self.train_bn or pipeline.schedule("lr") is None:
            # train_bn: a frozen group's norm layers still train, at the group's LR. Without an LR schedule
            # the optimizer's own LRs stand. Either way frozen weights get no gradient and so no update.
            return
        try:
            group_index = optimizer_group_index(state.optimizer, self.groups)
        except ConfigError:
            return  # param groups that span layer groups: freezing alone keeps the frozen ones still
        count = len(self.groups)
        trainable = [set(stage.trainable(count)) for stage in self.stages]
        factors = [
            stage_schedule(
                None,
                [
                    (start, constant(1.0 if index in active else 0.0))
                    for start, active in zip(self._starts, trainable)
                ],
                owner="GradualUnfreezing",
            )
            for index in group_index
        ]
        pipeline.multiply("lr", factors, owner="GradualUnfreezing")

    def _apply(self, state: TrainState) -> None:
        assert self.groups is not None
        index = self.stage_index(state.step)
        trainable = self.stages[index].trainable(len(self.groups))
        if index != self._active:
            requests = getattr(state, "freezing", None)
            if requests is None:  # a loop without the shared record: this technique alone
                requests = {}
            frozen = [(group, self.train_bn) for i, group in enumerate(self.groups) if i not in trainable]
            requests["GradualUnfreezing"] = (self.groups, frozen)
            frozen_params = combine_freezing_(
                requests, by_requires_grad=getattr(state, "freeze_by_requires_grad", True)
            )
            if hasattr(state, "frozen"):
                state.frozen = frozen_params
            self._active = index
        if not self.train_bn and state.model.training:
            # Frozen groups' norm layers in eval mode (the loop's model.train() switched them back on),
            # the trainable groups' in train mode (they may have been frozen until this stage).
            set_norm_eval_([group for i, group in enumerate(self.groups) if i not in trainable])
            for i in trainable:
                for module in self.groups[i].norm_modules():
                    module.train()
