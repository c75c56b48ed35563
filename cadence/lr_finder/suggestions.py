"""Rules that turn an LR range-test curve into a learning-rate suggestion.

All rules are pure functions of ``(lrs, smoothed_losses)`` so they can be tested on synthetic curves and
reused on curves loaded from disk. Only the finite prefix of the curve is used (a sweep that hit a
non-finite loss stops there).

- ``valley``: the longest downhill stretch of the smoothed curve, and a point two thirds of the way down it.
  The stretch is found from the longest strictly decreasing subsequence of the smoothed loss (so small bumps
  do not cut it short): it ends where the subsequence ends and is as many points long. Far enough down to be a
  fast learning rate, far enough from the bottom to be safe. The idea is fastai's ``valley`` rule
  (``fastai.callback.schedule``), implemented here from its description.
- ``steepest``: the LR where the smoothed loss falls fastest against ``log10(lr)``, i.e. the most negative
  ``d loss / d log10(lr)`` (``np.gradient``), looking only before the minimum and skipping a few points at
  each end, where the slope estimate is noisiest (Smith, 2017, "Cyclical Learning Rates", section 3.3).
- ``minimum``: the LR at the lowest smoothed loss divided by ten, the classic rule of thumb: at the minimum
  the LR is already about to destabilise training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["METHODS", "finite_prefix", "minimum", "steepest", "suggest", "valley"]

#: Suggestion rules in the order they are reported.
METHODS = ("valley", "steepest", "minimum")


def finite_prefix(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Return the curve up to (excluding) its first non-finite loss, as float arrays."""
    lr_array = np.asarray(lrs, dtype=float)
    loss_array = np.asarray(losses, dtype=float)
    if lr_array.shape != loss_array.shape:
        raise ValueError(
            f"lrs and losses must have the same length, got {len(lr_array)} and {len(loss_array)}"
        )
    bad = np.flatnonzero(~np.isfinite(loss_array))
    end = int(bad[0]) if bad.size else len(loss_array)
    return lr_array[:end], loss_array[:end]


def valley(lrs: Sequence[float], smoothed_losses: Sequence[float]) -> float | None:
    """LR two thirds of the way down the longest valley of the smoothed loss.

    The valley ends where the longest strictly decreasing subsequence ends (O(n²) dynamic programme over the
    at most a few hundred points of a sweep) and has as many points as that subsequence. With ``start`` and
    ``end`` its first and last index the suggestion is ``lrs[start + round(2/3 * (end - start))]``.

    Example: a curve that rises from index 0 to 10, falls from 10 to 40 and then rises again has its valley
    at [10, 40] and the suggestion at index 30.
    """
    lr_array, loss_array = finite_prefix(lrs, smoothed_losses)
    count = len(loss_array)
    if count == 0:
        return None
    if count < 3:
        return float(lr_array[0])
    # length[i]: number of points in the longest strictly decreasing subsequence ending at point i.
    length = np.ones(count, dtype=int)
    for i in range(1, count):
        earlier = loss_array[:i] > loss_array[i]
        if earlier.any():
            length[i] = int(length[:i][earlier].max()) + 1
    end = int(np.argmax(length))  # the first point where a longest chain ends
    # The valley is as long as the chain: on a noisy plateau a chain only picks up some of the points, so
    # the plateau counts for less than its width and the valley stays where the loss really falls.
    start = end - int(length[end]) + 1
    index = start + round(2.0 / 3.0 * (end - start))
    return float(lr_array[index])


def steepest(
    lrs: Sequence[float],
    smoothed_losses: Sequence[float],
    *,
    skip_start: int | None = None,
    skip_end: int = 5,
) -> float | None:
    """LR of the most negative slope ``d loss / d log10(lr)`` before the minimum of the smoothed loss.

    ``skip_start`` points at the beginning (default: 10% of the curve, at least 1: there the smoothed loss is
    still an average of only a few noisy batches) and ``skip_end`` points at the end are ignored, as is
    everything after the minimum. Works for exponential and linear sweeps alike because the slope is taken
    against the actual ``log10(lr)`` values.
    """
    lr_array, loss_array = finite_prefix(lrs, smoothed_losses)
    count = len(loss_array)
    if count == 0:
        return None
    if count < 3:
        return float(lr_array[0])
    if skip_start is None:
        skip_start = max(1, count // 10)
    slopes = np.gradient(loss_array, np.log10(lr_array))
    stop = min(int(np.argmin(loss_array)), count - skip_end)
    window = range(skip_start, stop)
    if len(window) == 0:  # short curve or minimum at the start: fall back to everything before the minimum
        window = range(0, max(1, int(np.argmin(loss_array))))
    index = min(window, key=lambda i: slopes[i])
    return float(lr_array[index])


def minimum(lrs: Sequence[float], smoothed_losses: Sequence[float]) -> float | None:
    """LR at the lowest smoothed loss, divided by ten."""
    lr_array, loss_array = finite_prefix(lrs, smoothed_losses)
    if len(loss_array) == 0:
        return None
    return float(lr_array[int(np.argmin(loss_array))] / 10.0)


_RULES = {"valley": valley, "steepest": steepest, "minimum": minimum}


def suggest(lrs: Sequence[float], smoothed_losses: Sequence[float]) -> dict[str, float]:
    """All suggestions for one curve, ``{method: lr}``; rules without an answer are left out."""
    result: dict[str, float] = {}
    for name in METHODS:
        value = _RULES[name](lrs, smoothed_losses)
        if value is not None and math.isfinite(value) and value > 0:
            result[name] = value
    return result
