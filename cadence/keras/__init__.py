"""cadence schedules in Keras 3 (``pip install 'cadence[keras]'``; tested with the torch backend).

- :class:`CadenceSchedule` turns any cadence schedule into a Keras ``LearningRateSchedule`` that saves with
  the model (``get_config`` stores :func:`cadence.schedules.to_config` of the schedule).
  The step is looked up in a float32 table of the schedule's values, so the LR is a pure tensor function of
  the optimizer's iteration count and works in graph mode (``jit_compile=True``).
- :class:`MomentumScheduler` is a callback that sets SGD's ``momentum`` or Adam's ``beta_1`` from a cadence
  schedule before every batch, keyed by the optimizer's iteration count (so it resumes).
- :class:`CyclicalLearningRate`, :class:`TriangularCyclicalLearningRate`,
  :class:`Triangular2CyclicalLearningRate` and :class:`ExponentialCyclicalLearningRate` replace TensorFlow
  Addons' classes of the same names and arguments.

    from cadence.keras import CadenceSchedule, MomentumScheduler
    from cadence.schedules import one_cycle, one_cycle_momentum

    optimizer = keras.optimizers.SGD(learning_rate=CadenceSchedule(one_cycle(max_lr=0.1, total_steps=1000)),
                                     momentum=0.95)
    model.fit(..., callbacks=[MomentumScheduler(one_cycle_momentum(total_steps=1000))])
"""

from __future__ import annotations

from cadence.keras.cyclical import (
    CyclicalLearningRate,
    ExponentialCyclicalLearningRate,
    Triangular2CyclicalLearningRate,
    TriangularCyclicalLearningRate,
)
from cadence.keras.momentum import MOMENTUM_ATTRIBUTES, MomentumScheduler
from cadence.keras.schedule import CadenceSchedule

__all__ = [
    "MOMENTUM_ATTRIBUTES",
    "CadenceSchedule",
    "CyclicalLearningRate",
    "ExponentialCyclicalLearningRate",
    "MomentumScheduler",
    "Triangular2CyclicalLearningRate",
    "TriangularCyclicalLearningRate",
]
