"""Calibration: how far a classifier's confidence is from its accuracy.

A model that says "90 % sure" should be right 9 times in 10. Label smoothing, mixup, ensembles and weight
averaging are partly claimed to help here rather than (or as well as) in accuracy, so their evidence reports
the expected calibration error beside the accuracy and the negative log-likelihood.
"""

from __future__ import annotations

import torch

__all__ = ["expected_calibration_error"]


def expected_calibration_error(outputs: torch.Tensor, labels: torch.Tensor, *, bins: int = 15) -> float:
    """Expected calibration error (ECE, Guo et al. 2017) of ``(N, K)`` logits or log-probabilities.

    The examples are put into ``bins`` equal-width bins by their confidence (the largest softmax
    probability); ECE is the average over bins of ``|accuracy - mean confidence|``, weighted by the share of
    examples in the bin. 0 is perfectly calibrated; over-confident models have a large ECE. 15 bins is the
    paper's choice. ``outputs`` may be logits or log-probabilities (``softmax`` gives the same
    probabilities for both), e.g. the output of :class:`cadence.ensembles.Ensemble`.

    Example::

        ece = expected_calibration_error(model(x_test), y_test)   # 0.031 = 3.1 points of miscalibration
    """
    if outputs.ndim != 2 or labels.ndim != 1 or outputs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected_calibration_error: outputs must be (N, K) and labels (N,), got "
            f"{tuple(outputs.shape)} and {tuple(labels.shape)}"
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"expected_calibration_error: bins = {bins!r}: expected a whole number >= 1")
    if outputs.shape[0] == 0:
        raise ValueError("expected_calibration_error: no examples")
    probabilities = torch.softmax(outputs.detach().float(), dim=-1)
    confidence, predicted = probabilities.max(dim=-1)
    correct = (predicted == labels.to(predicted.device)).float()
    # bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 cannot occur (K >= 1)
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    counts = torch.bincount(index, minlength=bins).float()
    confidence_sums = torch.bincount(index, weights=confidence, minlength=bins)
    correct_sums = torch.bincount(index, weights=correct, minlength=bins)
    gaps = (correct_sums - confidence_sums).abs()  # = count * |accuracy - confidence| per bin
    return float(gaps.sum() / counts.sum())
