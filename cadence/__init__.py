"""cadence: learning-rate and momentum policies for PyTorch, with the evidence that they help."""

from cadence.hyperparams import set_hyperparams

__version__ = "0.1.0"

__all__ = ["__version__", "set_hyperparams"]
