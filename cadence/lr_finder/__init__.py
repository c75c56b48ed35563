"""LR range test (Smith's "LR finder"): sweep, suggestions with a trust verdict, hand-off to schedules.

- :func:`find_lr` runs the sweep and restores everything it touched (``sweep.py``);
- :class:`LRFinderResult` holds curves, suggestions, trust, JSON and plot (``result.py``);
- the suggestion rules are pure functions of a curve (``suggestions.py``);
- :func:`resolve_auto_schedules` turns ``max_lr="auto"`` schedules into concrete ones (``auto.py``).
"""

from cadence.lr_finder.auto import resolve_auto_schedules
from cadence.lr_finder.result import LRCurve, LRFinderResult, Trust
from cadence.lr_finder.suggestions import METHODS, minimum, steepest, suggest, valley
from cadence.lr_finder.sweep import find_lr, planned_lrs

__all__ = [
    "METHODS",
    "LRCurve",
    "LRFinderResult",
    "Trust",
    "find_lr",
    "minimum",
    "planned_lrs",
    "resolve_auto_schedules",
    "steepest",
    "suggest",
    "valley",
]
