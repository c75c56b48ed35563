"""Optional dependencies fail with a message that says what to install."""

from __future__ import annotations

import pytest

from cadence.errors import ConfigError, DivergenceError, MissingDependencyError, require


def test_require_returns_the_module() -> None:
    import json

    assert require("json", "plot", "testing") is json


def test_require_names_the_extra_to_install() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'cadence\[plot\]'"):
        require("surely_not_installed_package.sub", "plot", "Plotting")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_divergence_error_carries_step_and_lr() -> None:
    error = DivergenceError("loss is nan at step 7", step=7, lr=0.5)
    assert (error.step, error.lr) == (7, 0.5)
