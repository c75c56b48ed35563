"""Scale the learning rate with the global batch, and warm it up (Goyal et al., 2017).

Data parallelism multiplies the number of samples behind each optimizer update::

    global_batch = per_device_batch × world_size × accumulation_steps

and the learning rate that worked at ``base_batch_size`` is scaled to match (``cadence.schedules.scaled_lr``):

- ``"linear"``: ``lr · global_batch / base_batch_size`` (Goyal et al., "Accurate, Large Minibatch SGD:
  Training ImageNet in 1 Hour", 2017: ResNet-50 at batch 8192 with LR 0.1 · 8192/256 = 3.2);
- ``"sqrt"``: ``lr · sqrt(global_batch / base_batch_size)`` (keeps the gradient-noise variance constant;
  Krizhevsky 2014, Hoffer et al. 2017; often preferred for Adam);
- ``"none"``: unchanged.

A larger LR is unstable in the first updates, so the scaled schedule starts with a linear warmup from the
unscaled value (``lr / factor``) to the scaled one (Goyal's "gradual warmup"). Its length is ``warmup_steps``
when given; otherwise it is **derived**: when ``factor > 1``, Goyal's 5 epochs, but at most 10 % of the run
(``min(5 · steps_per_epoch, round(0.1 · total_steps))``), and no warmup when ``factor <= 1`` or when the
schedule already warms up (its LR rises from step 0 to step 1: one-cycle, ``warmup_cosine``, a ``warmup``,
a ramp). A second ramp laid over a schedule's own warmup warms twice: on MNIST-1D with one-cycle at a
doubled global batch it cost about 7 points of accuracy (``benchmarks/results/ddp_lr_scaling.md``).

Schedules whose LR is ``"auto"`` (found by the LR range test) are not scaled: the finder runs with the
global batch, so the LR it finds already fits it.

Example::

    plan = lr_scaling_plan(0.1, per_device_batch=128, world_size=4, accumulation_steps=2,
                           rule="linear", steps_per_epoch=100, total_steps=3000)
    plan.summary()   # 'lr scaling: linear, global batch 1024 = 128 × 4 processes × 2 accumulation ...'
    schedule = plan.apply(lr_schedule_config)   # scaled, with a warmup over its first 300 steps
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cadence.errors import ConfigError
from cadence.schedules.base import Schedule
from cadence.schedules.combinators import Scaled

__all__ = [
    "LR_KEYS",
    "RULES",
    "LRScalingPlan",
    "ScaledSchedule",
    "derive_warmup_steps",
    "lr_scaling_plan",
    "warms_up",
]

RULES = ("linear", "sqrt", "none")

#: Keys of an LR schedule config whose numeric values are learning rates (shown before/after scaling).
LR_KEYS = frozenset(
    {
        "lr",
        "max_lr",
        "base_lr",
        "min_lr",
        "peak_lr",
        "start_lr",
        "end_lr",
        "final_lr",
        "initial_lr",
        "eta_min",
        "value",
        "start",
        "end",
    }
)

#: Goyal et al.'s warmup length in epochs, and the largest fraction of the run a derived warmup may take.
DERIVED_WARMUP_EPOCHS = 5
DERIVED_WARMUP_MAX_FRACTION = 0.1


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r}: expected a whole number >= 1")
    return value


def derive_warmup_steps(factor: float, *, steps_per_epoch: int | None, total_steps: int | None) -> int:
    """Warmup length when none is set: ``min(5 epochs, 10 % of total_steps)`` if ``factor > 1``, else 0.

    With only one of ``steps_per_epoch`` / ``total_steps`` known, the bound from the other is dropped.
    """
    if factor <= 1:
        return 0
    bounds = []
    if steps_per_epoch is not None:
        bounds.append(DERIVED_WARMUP_EPOCHS * steps_per_epoch)
    if total_steps is not None:
        bounds.append(round(DERIVED_WARMUP_MAX_FRACTION * total_steps))
    if not bounds:
        raise ConfigError(
            "distributed: warmup_steps is not set and cannot be derived; give warmup_steps (or "
            "warmup_epochs), or the run length (steps_per_epoch or total_steps)"
        )
    return max(1, min(bounds))


def warms_up(schedule: Schedule) -> bool:
    """True when ``schedule`` starts with a warmup of its own: its value rises from step 0 to step 1.

    One-cycle, ``warmup_cosine`` (with ``warmup_steps > 0``), ``warmup(...)``, ``ramp_sustain_decay`` and a
    triangular ``cyclic`` schedule do; constant, step and cosine decays do not. A derived warmup is not laid
    over such a schedule (see :func:`lr_scaling_plan`).
    """
    return schedule.at(1.0) > schedule.at(0.0)


#: ``factor · schedule(t)`` with a warmed-up factor: the schedule :func:`cadence.schedules.scaled` (kept
#: under this name; it prints as ``scaled(...)``, which builds it and round-trips through configs).
ScaledSchedule = Scaled


@dataclass(frozen=True)
class LRScalingPlan:
    """How a run's learning rate follows from its global batch.

    Print :meth:`summary`; record :meth:`to_dict` in the run; build the schedule with :meth:`apply`.
    """

    rule: str
    base_batch_size: int
    per_device_batch: int
    world_size: int
    accumulation_steps: int
    global_batch: int
    #: ``scaled_lr / base_lr``: global_batch / base_batch_size (linear), its square root (sqrt), or 1 (none).
    factor: float
    #: Learning rates before and after scaling, by name (``{"lr": ...}`` for a number, config keys otherwise).
    base_values: dict[str, float] = field(default_factory=dict)
    scaled_values: dict[str, float] = field(default_factory=dict)
    warmup_steps: int = 0
    #: "given" (by the user), "derived" (see :func:`derive_warmup_steps`), "schedule" (none added: the
    #: schedule warms up itself, see :func:`warms_up`) or "none".
    warmup_source: str = "none"
    #: True when the LR is found by the LR finder ("auto") and therefore not scaled.
    auto_lr: bool = False

    def summary(self) -> str:
        """One human-readable line, e.g. for the console and the run's summary."""
        parts = [
            f"lr scaling: {self.rule}, global batch {self.global_batch} = {self.per_device_batch} per device"
            f" × {self.world_size} process{'es' if self.world_size != 1 else ''}"
            f" × {self.accumulation_steps} accumulation step{'s' if self.accumulation_steps != 1 else ''}",
        ]
        if self.auto_lr:
            parts.append("lr found by the LR finder at the global batch (not scaled)")
        else:
            parts.append(f"factor {self.factor:.4g} (base batch {self.base_batch_size})")
            values = ", ".join(
                f"{key} {self.base_values[key]:.4g} -> {self.scaled_values[key]:.4g}"
                for key in self.base_values
            )
            if values:
                parts.append(values)
        if self.warmup_steps:
            parts.append(f"warmup {self.warmup_steps} steps ({self.warmup_source})")
        elif self.warmup_source == "schedule":
            parts.append("no added warmup (the schedule warms up itself)")
        else:
            parts.append("no warmup")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready record of the plan (for ``summary.json`` ``extra`` and ``meta.json``)."""
        return {
            "rule": self.rule,
            "base_batch_size": self.base_batch_size,
            "per_device_batch": self.per_device_batch,
            "world_size": self.world_size,
            "accumulation_steps": self.accumulation_steps,
            "global_batch": self.global_batch,
            "factor": self.factor,
            "base_values": dict(self.base_values),
            "scaled_values": dict(self.scaled_values),
            "warmup_steps": self.warmup_steps,
            "warmup_source": self.warmup_source,
            "auto_lr": self.auto_lr,
            "summary": self.summary(),
        }

    def apply(self, schedule: float | Mapping[str, Any] | Callable[[int], float]) -> Callable[[int], float]:
        """The run's LR schedule: ``schedule`` times ``factor``, with the plan's warmup over its first steps.

        ``schedule`` is the *unscaled* LR: a number, a schedule config (``cadence.schedules.to_config`` form)
        or a cadence schedule. The result is a :class:`ScaledSchedule` on the same clock as ``schedule``
        (its phase boundaries and length do not move). Schedules still waiting for the LR finder ("auto") are
        returned unchanged: the finder runs at the global batch.
        """
        from cadence import schedules

        if isinstance(schedule, Mapping):
            schedule = schedules.from_config(dict(schedule))
        elif isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
            schedule = schedules.constant(float(schedule))
        if not isinstance(schedule, schedules.Schedule):
            raise ConfigError(
                f"lr scaling: expected a number, a schedule config or a schedule, got {schedule!r}"
            )
        if self.auto_lr or schedule.needs_lr_finder:
            return schedule
        if self.factor == 1.0 and self.warmup_steps == 0:
            return schedule
        # Goyal's warmup starts from the unscaled LR; without scaling up, a warmup starts from zero.
        start = 1.0 if self.factor > 1.0 else 0.0
        return ScaledSchedule(schedule, self.factor, self.warmup_steps, start)


def _plain_config(schedule: Schedule) -> dict[str, Any]:
    from cadence.schedules import to_config

    try:
        return to_config(schedule)
    except ConfigError:  # e.g. a Python scale_fn: no config, so no LR values to show (scaling still works)
        return {}


def _warms_up(base: float | Mapping[str, Any] | Callable[[int], float]) -> bool:
    from cadence.schedules import from_config

    if isinstance(base, Mapping):
        try:
            base = from_config(dict(base))
        except ConfigError:  # an incomplete config (e.g. no total_steps yet): nothing to tell
            return False
    return isinstance(base, Schedule) and warms_up(base)


def _is_lr_entry(key: str, value: Any) -> bool:
    return key in LR_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)


def lr_scaling_plan(
    base_lr_or_schedule_config: float | Mapping[str, Any] | Callable[[int], float],
    per_device_batch: int,
    world_size: int,
    accumulation_steps: int = 1,
    *,
    rule: str = "linear",
    base_batch_size: int = 256,
    warmup_steps: int | None = None,
    warmup_epochs: float | None = None,
    steps_per_epoch: int | None = None,
    total_steps: int | None = None,
) -> LRScalingPlan:
    """Compute the LR scaling of a run: global batch, factor, scaled LRs and warmup length.

    ``base_lr_or_schedule_config`` is the LR tuned at ``base_batch_size``: a number, a schedule config dict
    (its :data:`LR_KEYS` entries are scaled; ``"auto"`` values mean the LR finder picks the LR, unscaled) or
    a cadence schedule. ``warmup_steps`` (or ``warmup_epochs`` × ``steps_per_epoch``)
    sets the warmup; when both are ``None`` it is derived by :func:`derive_warmup_steps`, except that none
    is added to a schedule that already warms up (:func:`warms_up`; ``warmup_source`` is then
    ``"schedule"``).
    """
    if rule not in RULES:
        raise ConfigError(f"distributed.lr_scaling={rule!r}: choose one of {', '.join(map(repr, RULES))}")
    per_device_batch = _positive_int("batch_size", per_device_batch)
    world_size = _positive_int("world_size", world_size)
    accumulation_steps = _positive_int("accumulation_steps", accumulation_steps)
    base_batch_size = _positive_int("distributed.base_batch_size", base_batch_size)
    if steps_per_epoch is not None:
        steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
    if total_steps is not None:
        total_steps = _positive_int("total_steps", total_steps)
    global_batch = per_device_batch * world_size * accumulation_steps

    from cadence.schedules import scaled_lr

    if rule == "none":
        factor = 1.0
    else:
        factor = scaled_lr(1.0, global_batch, base_batch_size=base_batch_size, rule=rule)

    base = base_lr_or_schedule_config
    if isinstance(base, Schedule):
        base = {"auto": "auto"} if base.needs_lr_finder else _plain_config(base)
    if isinstance(base, bool) or not isinstance(base, (int, float, Mapping)):
        raise ConfigError(
            "lr scaling: expected a learning rate (number) or a schedule config, "
            f"got {base_lr_or_schedule_config!r}"
        )
    if isinstance(base, Mapping):
        auto_lr = any(value == "auto" for value in base.values())
        base_values = {key: float(value) for key, value in base.items() if _is_lr_entry(key, value)}
    else:
        if not base > 0:
            raise ConfigError(f"lr={base!r}: expected a learning rate > 0")
        auto_lr = False
        base_values = {"lr": float(base)}
    factor_applied = 1.0 if auto_lr else factor
    scaled_values = {key: value * factor_applied for key, value in base_values.items()}

    if warmup_steps is not None and warmup_epochs is not None:
        raise ConfigError("distributed: set warmup_steps or warmup_epochs, not both")
    if warmup_epochs is not None:
        if steps_per_epoch is None:
            raise ConfigError(
                "distributed.warmup_epochs needs the number of steps per epoch; set warmup_steps"
            )
        if warmup_epochs < 0:
            raise ConfigError(f"distributed.warmup_epochs={warmup_epochs!r}: expected a number >= 0")
        warmup_steps = round(warmup_epochs * steps_per_epoch)
    if auto_lr or (factor_applied == 1.0 and warmup_steps is None):
        warmup, source = 0, "none"
    elif warmup_steps is not None:
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(f"distributed.warmup_steps={warmup_steps!r}: expected a whole number >= 0")
        warmup, source = warmup_steps, "given" if warmup_steps else "none"
    elif factor > 1 and _warms_up(base_lr_or_schedule_config):
        warmup, source = 0, "schedule"
    else:
        warmup = derive_warmup_steps(factor, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
        source = "derived" if warmup else "none"
    return LRScalingPlan(
        rule=rule,
        base_batch_size=base_batch_size,
        per_device_batch=per_device_batch,
        world_size=world_size,
        accumulation_steps=accumulation_steps,
        global_batch=global_batch,
        factor=factor,
        base_values=base_values,
        scaled_values=scaled_values,
        warmup_steps=warmup,
        warmup_source=source,
        auto_lr=bool(auto_lr),
    )
