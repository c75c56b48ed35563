"""``torch.compile`` and the GPU math switches of a run: the compile, tf32 and cudnn_benchmark options.

``compile`` is ``False`` (eager), ``True`` (``torch.compile`` with its defaults) or a mapping of
``torch.compile`` arguments: ``mode`` (one of :data:`COMPILE_MODES`), ``fullgraph`` and ``dynamic`` (bools)
and ``backend`` (a backend name, ``"inductor"`` by default). :func:`compile_arguments` checks it and
returns the keyword arguments for ``torch.compile`` (``None``: do not compile).

``tf32`` and ``cudnn_benchmark`` are process-wide switches of the CUDA backends
(:func:`apply_backend_settings`); on any other device they are recorded and change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cadence.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: the config schema imports this module
    import torch
    from torch import nn

__all__ = [
    "COMPILE_KEYS",
    "COMPILE_MODES",
    "CompileOption",
    "apply_backend_settings",
    "check_compile",
    "compile_arguments",
    "compile_module",
]

#: The ``mode`` values of ``torch.compile`` a run may ask for.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
#: The keys of a ``compile`` table.
COMPILE_KEYS = ("mode", "fullgraph", "dynamic", "backend")

CompileOption = bool | Mapping[str, Any]

_TABLE = (
    "true, false or a table {mode = "
    + " | ".join(f'"{mode}"' for mode in COMPILE_MODES)
    + ", fullgraph = true | false, dynamic = true | false, backend = a torch.compile backend name}"
)


def _problem(value: Any) -> str | None:
    """None when ``value`` is a valid ``compile`` option, else what is wrong with it (naming the field)."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, Mapping):
        return _TABLE
    unknown = [key for key in value if key not in COMPILE_KEYS]
    if unknown:
        return f"{_TABLE}; unknown key compile.{unknown[0]} (valid keys: {', '.join(COMPILE_KEYS)})"
    if "mode" in value and value["mode"] not in COMPILE_MODES:
        modes = ", ".join(repr(mode) for mode in COMPILE_MODES)
        return f"compile.mode to be one of {modes}, got {value['mode']!r}"
    for key in ("fullgraph", "dynamic"):
        if key in value and not isinstance(value[key], bool):
            return f"compile.{key} to be true or false, got {value[key]!r}"
    if "backend" in value and not (isinstance(value["backend"], str) and value["backend"]):
        return f"compile.backend to be a backend name such as 'inductor', got {value['backend']!r}"
    return None


def check_compile(value: Any) -> str | None:
    """The config check of ``[train] compile``: None when valid, else a description of the valid values."""
    return _problem(value)


def compile_arguments(value: Any) -> dict[str, Any] | None:
    """The keyword arguments of ``torch.compile`` that ``compile=value`` asks for; ``None`` for ``False``.

    >>> compile_arguments(True)
    {}
    >>> compile_arguments({"mode": "max-autotune", "dynamic": False})
    {'mode': 'max-autotune', 'dynamic': False}

    Raises :class:`~cadence.errors.ConfigError` naming the field and its allowed values.
    """
    problem = _problem(value)
    if problem is not None:
        raise ConfigError(f"compile = {value!r}: expected {problem}")
    if value is False:
        return None
    if value is True:
        return {}
    return {key: value[key] for key in COMPILE_KEYS if key in value}


def compile_module(module: nn.Module, arguments: Mapping[str, Any]) -> nn.Module:
    """``torch.compile(module, **arguments)``: a wrapper that shares ``module``'s parameters and its
    train/eval mode."""
    import torch

    return torch.compile(module, **arguments)


def apply_backend_settings(device: torch.device, *, tf32: bool, cudnn_benchmark: bool) -> dict[str, Any]:
    """Set the CUDA backends' TF32 and cuDNN autotuning switches on a CUDA ``device``; what the run records.

    ``tf32`` allows TensorFloat-32 in float32 matrix products and cuDNN convolutions (PyTorch's own default
    allows it for convolutions only); ``cudnn_benchmark`` lets cuDNN time its convolution algorithms for each
    new input shape and keep the fastest. Both are process-wide: they stay set after the run. On any other
    device nothing is changed and ``"applied"`` is ``False``.
    """
    applied = device.type == "cuda"
    if applied:
        import torch

        # The allow_tf32 switches, not the fp32_precision ones of torch >= 2.9: after those, reading
        # allow_tf32 or torch.get_float32_matmul_precision() raises (a mix of the two APIs); these keep
        # both readable and consistent.
        matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
        matmul.allow_tf32 = tf32
        cudnn.allow_tf32 = tf32
        cudnn.benchmark = cudnn_benchmark
    return {"tf32": tf32, "cudnn_benchmark": cudnn_benchmark, "applied": applied}
