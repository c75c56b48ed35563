"""The command-line dispatcher: unknown commands and bad usage exit with code 2 and one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cadence.cli.main import SUBCOMMANDS, main


def test_unknown_command_names_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err
    for name in SUBCOMMANDS:
        assert name in err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: cadence" in capsys.readouterr().out


def test_every_subcommand_module_exposes_the_protocol() -> None:
    import importlib

    for module_name, _help in SUBCOMMANDS.values():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments), module_name
        assert callable(module.run), module_name


def test_python_dash_m_cadence_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("cadence ")
