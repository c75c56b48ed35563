"""Regularization as soft targets: label smoothing, mixup, CutMix and one soft-target cross-entropy.

Every technique here turns integer class labels into *soft targets* (rows of class probabilities that sum to
one), and a single loss, :func:`soft_cross_entropy`, serves all of them. Because they all speak the same
currency they compose: smooth the labels first, then mix the smoothed targets of two examples.

Plain-loop example::

    for x, y in loader:
        targets = one_hot(y, num_classes=10, smoothing=0.1)
        x, targets = mixup_batch(x, targets, alpha=0.2, generator=generator)
        loss = soft_cross_entropy(model(x), targets)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cadence.errors import ConfigError

__all__ = [
    "check_soft_target_loss",
    "cutmix_batch",
    "mixup_batch",
    "one_hot",
    "soft_cross_entropy",
]

_REDUCTIONS = ("mean", "sum", "none")


def one_hot(
    targets: torch.Tensor, num_classes: int, smoothing: float = 0.0, *, check_labels: bool = True
) -> torch.Tensor:
    """Integer class labels -> float one-hot rows, optionally label-smoothed.

    With smoothing ``ε`` every row becomes ``(1 - ε) · onehot(y) + ε / K`` for ``K = num_classes``, the
    definition of Szegedy et al. 2016 ("Rethinking the Inception Architecture") and of
    ``torch.nn.functional.cross_entropy(..., label_smoothing=ε)``. Rows sum to one.

    Targets that are already soft (a floating-point tensor of shape ``(..., num_classes)``) are smoothed the
    same way, ``(1 - ε) · t + ε / K``, so smoothing can be applied to mixed targets too.

    ``check_labels=False`` skips the range check of integer labels, which reads their minimum and maximum on
    the host (a device synchronisation on an accelerator); a label outside ``[0, num_classes)`` then gives a
    row of zeros (plus ``ε / K``) instead of an error. A training loop that wants no read per batch checks
    the labels on the device and reads the result when it logs (the Trainer does).

    >>> one_hot(torch.tensor([2, 0]), 4, smoothing=0.2)
    tensor([[0.0500, 0.0500, 0.8500, 0.0500],
            [0.8500, 0.0500, 0.0500, 0.0500]])
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes=}")
    if not 0.0 <= smoothing <= 1.0:
        raise ConfigError(f"label smoothing must be in [0, 1], got {smoothing=}")
    if targets.is_floating_point():
        if targets.shape[-1:] != (num_classes,):
            raise ConfigError(
                f"soft targets must have a last dimension of size num_classes={num_classes}, "
                f"got shape {tuple(targets.shape)}"
            )
        result = targets
    elif not check_labels:
        # A comparison, not F.one_hot: that reads the labels' range on the CPU and asserts on CUDA.
        classes = torch.arange(num_classes, device=targets.device)
        result = (targets.long().unsqueeze(-1) == classes).to(torch.get_default_dtype())
    else:
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            raise ConfigError(
                f"class labels must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
                f"got values from {int(targets.min())} to {int(targets.max())}"
            )
        result = F.one_hot(targets.long(), num_classes).to(torch.get_default_dtype())
    if smoothing:
        result = result * (1.0 - smoothing) + smoothing / num_classes
    return result


def soft_cross_entropy(
    logits: torch.Tensor, soft_targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy against class probabilities: ``-Σ_k t_k · log softmax(z)_k`` per example.

    ``logits`` has shape ``(N, K)`` (or ``(N, K, ...)`` with targets ``(N, K, ...)`` like torch).
    ``reduction`` is ``"mean"`` (over examples), ``"sum"`` or ``"none"``. On one-hot targets this equals
    ``F.cross_entropy(logits, labels)``; on ``one_hot(labels, K, smoothing=ε)`` it equals
    ``F.cross_entropy(logits, labels, label_smoothing=ε)``. The log-softmax is computed in float32 even
    under bf16/fp16 autocast, so mixed precision does not lose the small target mass.
    """
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction=}")
    if logits.shape != soft_targets.shape:
        raise ConfigError(
            f"logits and soft targets must have the same shape, got {tuple(logits.shape)} and "
            f"{tuple(soft_targets.shape)}"
        )
    log_probabilities = F.log_softmax(logits.float(), dim=1)
    losses = -(soft_targets.to(log_probabilities.dtype) * log_probabilities).sum(dim=1)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _as_soft(y: torch.Tensor, num_classes: int | None, dtype: torch.dtype) -> torch.Tensor:
    if y.is_floating_point():
        if y.dim() != 2:
            raise ConfigError(f"soft targets must have shape (batch, num_classes), got {tuple(y.shape)}")
        if num_classes is not None and y.shape[1] != num_classes:
            raise ConfigError(
                f"soft targets have {y.shape[1]} classes but num_classes={num_classes} was given"
            )
        return y
    if num_classes is None:
        raise ConfigError("num_classes is required when the targets are integer class labels")
    return one_hot(y, num_classes).to(dtype if dtype.is_floating_point else torch.get_default_dtype())


def _sample_lambda(alpha: float, generator: torch.Generator | None, name: str) -> float:
    if not (isinstance(alpha, (int, float)) and alpha > 0 and math.isfinite(alpha)):
        raise ConfigError(f"{name} must be a positive finite number, got {name}={alpha!r}")
    # Beta(α, α) from numpy's sampler, seeded by a draw from ``generator`` so that the torch generator alone
    # determines the result (torch.distributions.Beta cannot take a generator).
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _sample_lambda_tensor(alpha: float, generator: torch.Generator | None) -> torch.Tensor:
    """``λ ~ Beta(α, α)`` as a 0-dimensional CPU float64 tensor, never read on the host: ``G₁ / (G₁ + G₂)``
    for two ``Gamma(α, 1)`` draws from ``generator``. A CPU 0-d tensor enters device arithmetic as a
    scalar argument, so mixing a CUDA batch with it copies nothing and waits for nothing."""
    if not (isinstance(alpha, (int, float)) and alpha > 0 and math.isfinite(alpha)):
        raise ConfigError(f"alpha must be a positive finite number, got alpha={alpha!r}")
    shape = torch.full((2,), float(alpha), dtype=torch.float64)
    gammas = torch._standard_gamma(shape, generator=generator)  # what torch.distributions.Gamma samples with
    # Both draws underflow to 0 only for a tiny α; the clamp makes λ 0 then instead of NaN.
    return gammas[0] / gammas.sum().clamp_min(torch.finfo(torch.float64).tiny)


def _permutation(size: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # non_blocking: a copy to an accelerator must not wait for the work queued before it.
    return torch.randperm(size, generator=generator).to(device, non_blocking=True)


def mixup_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    *,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization").

    Draws ``λ ~ Beta(α, α)`` and a random permutation ``π`` of the batch and returns
    ``x' = λ·x + (1-λ)·x[π]`` and ``t' = λ·t + (1-λ)·t[π]``, where ``t`` are the soft targets: ``y`` itself
    when it is already a float ``(N, K)`` tensor (for example label-smoothed), else ``one_hot(y,
    num_classes)``. Rows of ``t'`` sum to one. All randomness comes from ``generator`` (a CPU
    ``torch.Generator``), so a seeded generator gives the same batch every time.
    """
    soft = _as_soft(y, num_classes, x.dtype)
    lam = _sample_lambda_tensor(alpha, generator)  # stays a tensor: no host read per batch
    permutation = _permutation(x.shape[0], generator, x.device)
    mixed_x = x * lam + x[permutation] * (1.0 - lam)
    mixed_targets = soft * lam + soft[permutation.to(soft.device)] * (1.0 - lam)
    return mixed_x, mixed_targets


def cutmix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    *,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers").

    Draws ``λ ~ Beta(α, α)``, a permutation ``π`` and a box of area about ``(1-λ)`` of the input, centred
    uniformly at random and clipped at the borders; pastes that box from ``x[π]`` into ``x``. The target
    weight is the *actual* pasted fraction ``a`` after clipping: ``t' = (1-a)·t + a·t[π]``, so the label
    mass matches the pixels. Works on inputs ``(N, L)`` (sequences, e.g. token ids: a contiguous span of
    positions), ``(N, C, L)`` (1-D signals: a segment across all channels) and ``(N, C, H, W)`` (images: a
    rectangle); rows of ``t'`` sum to one. Any dtype is pasted as is, so integer token ids stay tokens.
    """
    if x.dim() not in (2, 3, 4):
        raise ConfigError(
            f"cutmix needs inputs of shape (N, L), (N, C, L) or (N, C, H, W), got {tuple(x.shape)}; "
            "use mixup instead"
        )
    soft = _as_soft(y, num_classes, x.dtype)
    lam = _sample_lambda(alpha, generator, "cutmix_alpha")
    permutation = _permutation(x.shape[0], generator, x.device)
    leading = 1 if x.dim() == 2 else 2  # (N, L): positions start at dim 1; else after the channels
    spatial = x.shape[leading:]
    cut_fraction = math.sqrt(1.0 - lam) if len(spatial) == 2 else 1.0 - lam
    bounds = []
    for size in spatial:
        length = round(size * cut_fraction)
        centre = int(torch.randint(0, size, (1,), generator=generator))
        low = max(0, centre - length // 2)
        high = min(size, centre + length - length // 2)
        bounds.append((low, high))
    mixed_x = x.clone()
    region = (*(slice(None),) * leading, *(slice(low, high) for low, high in bounds))
    mixed_x[region] = x[permutation][region]
    pasted = math.prod(high - low for low, high in bounds) / math.prod(spatial)
    mixed_targets = soft * (1.0 - pasted) + soft[permutation.to(soft.device)] * pasted
    return mixed_x, mixed_targets


# Losses that take class indices, independent per-class (multi-label) probabilities or regression targets,
# never a distribution over classes: feeding them mixup/smoothed targets would silently train a different
# objective. (nn.KLDivLoss takes a distribution, so it is allowed; it expects log-probabilities as input.)
_HARD_TARGET_LOSSES = (
    nn.NLLLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.MultiLabelSoftMarginLoss,
    nn.MultiMarginLoss,
    nn.MultiLabelMarginLoss,
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.CTCLoss,
)


def check_soft_target_loss(loss_fn: object, *, purpose: str = "soft targets") -> None:
    """Raise :class:`ConfigError` unless ``loss_fn`` accepts soft targets (class probabilities).

    Accepted: :func:`soft_cross_entropy`, ``torch.nn.functional.cross_entropy`` and ``nn.CrossEntropyLoss``
    (which takes probabilities since torch 1.10), and any other callable (custom losses are trusted).
    Rejected with a message naming the
    loss: ``nn.NLLLoss``, ``nn.BCELoss``, ``nn.BCEWithLogitsLoss``, ``nn.MSELoss`` and the other regression or
    multi-label losses, and ``nn.CrossEntropyLoss`` with ``ignore_index`` set (probabilities cannot carry an
    ignored class). ``purpose`` names what needs soft targets ("mixup", "label smoothing") in the message.
    """
    name = type(loss_fn).__name__ if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", None)
    name = name or repr(loss_fn)
    if isinstance(loss_fn, _HARD_TARGET_LOSSES) or loss_fn in (
        F.nll_loss,
        F.binary_cross_entropy,
        F.binary_cross_entropy_with_logits,
        F.mse_loss,
    ):
        raise ConfigError(
            f"{purpose} produces soft targets (class probabilities), which the loss {name} cannot take; "
            "use cadence.regularization.soft_cross_entropy or torch.nn.CrossEntropyLoss"
        )
    if isinstance(loss_fn, nn.CrossEntropyLoss) and loss_fn.ignore_index != -100:
        raise ConfigError(
            f"{purpose} produces soft targets, but CrossEntropyLoss(ignore_index={loss_fn.ignore_index}) "
            "only works with class indices; drop ignore_index or use soft_cross_entropy"
        )
    if not callable(loss_fn):
        raise ConfigError(f"the loss must be callable, got {name}")
