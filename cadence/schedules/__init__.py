"""Learning-rate and momentum schedules: pure, picklable functions of the optimizer step.

``schedule(step) -> float``; ``repr(schedule)`` is the call that builds it; steps past the end hold the final
value. Primitives and combinators compose into the recipes (one-cycle, cyclical LR, SGDR, snapshot cosine,
warmup + cosine, ramp-sustain-decay). Apply them with :func:`cadence.set_hyperparams` in a plain loop, or with
:class:`LRSchedulerAdapter` where a torch ``LRScheduler`` is expected.

Example::

    >>> from cadence.schedules import one_cycle
    >>> schedule = one_cycle(0.1, total_steps=1000)
    >>> round(schedule(0), 6), round(schedule(299), 6)
    (0.004, 0.1)
"""

from cadence.schedules.base import AUTO, Schedule, needs_lr_finder
from cadence.schedules.combinators import (
    Compress,
    Join,
    Product,
    Repeat,
    Scaled,
    Sequence,
    Shift,
    Truncate,
    Warmup,
    compress,
    join,
    product,
    repeat,
    scaled,
    sequence,
    shift,
    truncate,
    warmup,
)
from cadence.schedules.config import SCHEDULES, from_config, schedule_keys, to_config
from cadence.schedules.primitives import (
    Constant,
    Cosine,
    Exponential,
    Geometric,
    Linear,
    Polynomial,
    constant,
    cosine,
    exponential,
    geometric,
    linear,
    polynomial,
)
from cadence.schedules.recipes import (
    CosineRestarts,
    Cyclic,
    CyclicMomentum,
    OneCycle,
    OneCycleMomentum,
    RampSustainDecay,
    Recipe,
    SnapshotCosine,
    WarmupCosine,
    cosine_restarts,
    cyclic,
    cyclic_momentum,
    one_cycle,
    one_cycle_momentum,
    ramp_sustain_decay,
    scaled_lr,
    snapshot_cosine,
    warmup_cosine,
)
from cadence.schedules.torch_adapter import LRSchedulerAdapter

__all__ = [
    "AUTO",
    "SCHEDULES",
    "Compress",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "CyclicMomentum",
    "Exponential",
    "Geometric",
    "Join",
    "LRSchedulerAdapter",
    "Linear",
    "OneCycle",
    "OneCycleMomentum",
    "Polynomial",
    "Product",
    "RampSustainDecay",
    "Recipe",
    "Repeat",
    "Scaled",
    "Schedule",
    "Sequence",
    "Shift",
    "SnapshotCosine",
    "Truncate",
    "Warmup",
    "WarmupCosine",
    "compress",
    "constant",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "cyclic_momentum",
    "exponential",
    "from_config",
    "geometric",
    "join",
    "linear",
    "needs_lr_finder",
    "one_cycle",
    "one_cycle_momentum",
    "polynomial",
    "product",
    "ramp_sustain_decay",
    "repeat",
    "scaled",
    "scaled_lr",
    "schedule_keys",
    "sequence",
    "shift",
    "snapshot_cosine",
    "to_config",
    "truncate",
    "warmup",
    "warmup_cosine",
]
