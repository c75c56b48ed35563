"""Where :class:`RecordLRScaling` used to live; it is :class:`cadence.callbacks.lr_scaling.RecordLRScaling`.

Kept so that old imports work. Importing this module imports the callbacks layer; ``cadence.distributed``
itself does not (``cadence.distributed.RecordLRScaling`` is resolved on first use).
"""

from cadence.callbacks.lr_scaling import RecordLRScaling

__all__ = ["RecordLRScaling"]
