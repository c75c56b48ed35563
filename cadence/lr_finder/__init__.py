"""LR range test (Smith's "LR finder"): sweep, suggestions with a trust verdict, hand-off to schedules.

- :func:`find_lr` runs the sweep and restores everything it touched (``sweep.py``);
- :class:`LRFinderResult` holds curves, suggestions, trust, JSON and plot (``result.py``);
- the suggestion rules are pure functions of a curve (``suggestions.py``);
- :func:`select_lr` chooses ``max_lr`` by a sweep and a short race of candidates (``race.py``) on a
  validation split carved from the training data (:func:`holdout_split`, ``holdout.py``); its record,
  :class:`LRSelection`, is in ``selection.py``;
- :func:`resolve_auto_schedules` turns ``max_lr="auto"`` schedules into concrete ones (``auto.py``).
"""

from cadence.lr_finder.auto import resolve_auto_schedules
from cadence.lr_finder.holdout import holdout_split
from cadence.lr_finder.race import LRSelection, RaceEntry, select_lr
from cadence.lr_finder.result import LRCurve, LRFinderResult, Trust
from cadence.lr_finder.suggestions import METHODS, minimum, steepest, suggest, valley
from cadence.lr_finder.sweep import find_lr, planned_lrs

__all__ = [
    "METHODS",
    "LRCurve",
    "LRFinderResult",
    "LRSelection",
    "RaceEntry",
    "Trust",
    "find_lr",
    "holdout_split",
    "minimum",
    "planned_lrs",
    "resolve_auto_schedules",
    "select_lr",
    "steepest",
    "suggest",
    "valley",
]
