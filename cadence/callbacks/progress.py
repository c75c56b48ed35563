"""The progress display is part of the Trainer: :class:`cadence.train.progress.ProgressBar`.

Re-exported here, where it used to live, so that ``cadence.callbacks.ProgressBar`` keeps working.
"""

from cadence.train.progress import ProgressBar

__all__ = ["ProgressBar"]
