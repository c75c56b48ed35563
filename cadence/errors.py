"""Exceptions shared across cadence.

Every error a user can cause by bad input derives from :class:`ConfigError` (itself a ``ValueError``), so the
command line can print one clear line and exit with code 2 instead of a traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DivergenceError", "MissingDependencyError", "require", "warn_moved"]


class ConfigError(ValueError):
    """A user-supplied value is invalid. The message names the field and the allowed values."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss. The message names the step and the learning rate."""

    def __init__(self, message: str, *, step: int, lr: float | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.lr = lr


class MissingDependencyError(ImportError):
    """An optional dependency is needed for this feature; the message says what to install."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency lazily, or raise a message that says which extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{purpose} needs the package '{module.split('.')[0]}': pip install 'cadence[{extra}]'"
        ) from error


def warn_moved(old: str, new: str) -> None:
    """Warn that module ``old`` moved to ``new``; called by the back-compatibility module left at ``old``.

    The warning points at the code that imported ``old`` (``warnings`` skips the import machinery's frames),
    so Python's default filters show it when that code is ``__main__``.
    """
    import warnings

    # 1: this function, 2: the old module's body, 3: the importer
    warnings.warn(f"{old} is deprecated: import from {new}", DeprecationWarning, stacklevel=3)
