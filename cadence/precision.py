"""Numeric precision in one object: fp32, bf16 autocast, or fp16 autocast with dynamic loss scaling.

The three modes share one interface, so a loop never branches on the mode::

    precision = Precision("fp16", device)
    with precision.autocast():
        loss = loss_fn(model(x), y)
    precision.backward(loss)                       # fp16: backward of loss × scale
    applied = precision.step(optimizer, model.parameters(), grad_clip=1.0)

``step`` does, in this order: unscale the gradients (fp16), clip their global norm, ``optimizer.step()``
(skipped by the scaler when a gradient is inf/NaN), and update the scale. Unscaling *before* clipping is what
makes ``grad_clip`` mean the same thing in every mode (clipping scaled gradients would clip at
``grad_clip × scale``). Parameters and optimizer state stay in fp32 ("master weights"): autocast only runs
selected operations in the low-precision type.

- ``fp32``: no autocast, no scaler.
- ``bf16``: autocast to bfloat16 (works on CPU and on recent GPUs); same exponent range as fp32, so no scaler.
- ``fp16``: autocast to float16 plus :class:`torch.amp.GradScaler` (Micikevicius et al. 2018, "Mixed
  Precision Training"): the loss is multiplied by a scale ``S`` (start ``2**16``); if any gradient overflows
  the update is skipped and ``S`` halves; after ``growth_interval`` clean steps ``S`` doubles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch

from cadence.errors import ConfigError

__all__ = ["PRECISION_MODES", "Precision"]

PRECISION_MODES = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NO_AUTOCAST = contextlib.nullcontext()  # reusable and reentrant


class Precision:
    """Autocast, backward and optimizer step for one precision mode on one device type.

    Args:
        mode: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: the device the model runs on (its type picks the autocast backend).
        init_scale: fp16 only: the initial loss scale.
        growth_interval: fp16 only: clean steps before the scale doubles.
    """

    def __init__(
        self,
        mode: str = "fp32",
        device: torch.device | str = "cpu",
        *,
        init_scale: float = 2.0**16,
        growth_interval: int = 2000,
    ) -> None:
        if mode not in PRECISION_MODES:
            raise ConfigError(f"precision must be one of {', '.join(PRECISION_MODES)}; got {mode!r}")
        self.mode = mode
        self.device_type = torch.device(device).type
        self.dtype = _DTYPES.get(mode)
        self.scaler: torch.amp.GradScaler | None = None
        if mode == "fp16":
            try:
                self.scaler = torch.amp.GradScaler(
                    self.device_type, init_scale=init_scale, growth_interval=growth_interval
                )
            except (RuntimeError, ValueError, TypeError, AttributeError) as error:
                raise ConfigError(
                    f"precision='fp16' needs loss scaling, which this torch ({torch.__version__}) does not "
                    f"support on device type {self.device_type!r} ({error}); use precision='bf16' or 'fp32'"
                ) from error

    def __repr__(self) -> str:
        return f"Precision({self.mode!r}, {self.device_type!r})"

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Context for the forward pass and the loss: autocast in bf16/fp16, nothing in fp32."""
        if self.dtype is None:
            return _NO_AUTOCAST
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, of the scaled loss under fp16."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale (fp16; no-op otherwise). At most once per step."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[torch.Tensor] | None = None,
        grad_clip: float | None = None,
    ) -> bool:
        """Unscale -> clip -> step -> update. Returns False when the fp16 scaler skipped the update.

        ``grad_clip`` clips the global L2 norm of the gradients of ``parameters`` (all of the optimizer's
        parameters when ``None``) to at most that value, computed on the *unscaled* gradients.

        Under fp16 the return value is read from the device (one synchronisation); a loop that wants none
        calls :meth:`apply_step` and reads its flag when it logs.
        """
        applied = self.apply_step(optimizer, parameters, grad_clip)
        return True if applied is None else bool(applied)

    def apply_step(
        self,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[torch.Tensor] | None = None,
        grad_clip: float | None = None,
    ) -> torch.Tensor | None:
        """:meth:`step` without reading anything back from the device.

        Returns ``None`` in fp32 and bf16 (every update is applied), and under fp16 a 0-dimensional bool
        tensor on the gradients' device, true when the update was applied: the scaler skips exactly the
        steps whose unscaled gradients hold an inf or NaN, which is when their global norm is not finite
        (the norm ``grad_clip`` computes anyway; one fused norm over the gradients without it).

        :class:`torch.amp.GradScaler` itself reads its inf flag on the host before ``optimizer.step()``
        unless the optimizer applies the scale itself: ``fused=True`` Adam, AdamW and SGD do, and
        :func:`cadence.optimizers.create` builds fused ones by default on CUDA.
        """
        if self.scaler is None:
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(_parameters(optimizer, parameters), grad_clip)
            optimizer.step()
            return None
        self.scaler.unscale_(optimizer)
        with_gradients = _parameters(optimizer, parameters)
        if grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(with_gradients, grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in with_gradients if p.grad is not None])
        applied = torch.isfinite(norm)
        self.scaler.step(optimizer)  # skipped when unscale_ found inf/NaN gradients
        self.scaler.update()  # the scale only goes down (by backoff_factor) when the step was skipped
        return applied

    @property
    def scale(self) -> float:
        """The current fp16 loss scale (1.0 in other modes)."""
        return float(self.scaler.get_scale()) if self.scaler is not None else 1.0

    def state_dict(self) -> dict[str, Any]:
        """The mode and, under fp16, the scaler's state (plain numbers: weights_only-safe)."""
        state: dict[str, Any] = {"mode": self.mode}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the scaler; refuse a checkpoint written in another mode."""
        mode = state_dict.get("mode", self.mode)
        if mode != self.mode:
            raise ConfigError(
                f"precision: the checkpoint was written with precision={mode!r} but this run uses "
                f"precision={self.mode!r}; resume with the same precision"
            )
        if self.scaler is not None and state_dict.get("scaler"):
            self.scaler.load_state_dict(state_dict["scaler"])


def _parameters(
    optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor] | None
) -> list[torch.Tensor]:
    if parameters is not None:
        return [p for p in parameters if p.grad is not None]
    return [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
