"""`cadence schedule`: table and PNG from a name or a TOML file; bad input is one line and exit code 2."""

from __future__ import annotations

import pytest

from cadence.cli.main import main


def test_table_and_png_from_a_name(tmp_path, capsys) -> None:
    output = tmp_path / "one_cycle.png"
    code = main(
        [
            "schedule", "one_cycle", "--set", "max_lr=0.1", "--set", "total_steps=1000",
            "--steps-per-epoch", "100", "--output", str(output),
        ]
    )  # fmt: skip
    assert code == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("one_cycle(max_lr=0.1, total_steps=1000")
    assert lines[1].startswith("one_cycle_momentum(total_steps=1000")
    assert lines[2].split() == ["step", "epoch", "lr", "momentum"]
    assert lines[3].split() == ["0", "0.00", "0.004", "0.9500"]
    assert lines[4].split() == ["299", "2.99", "0.1", "0.8500"]
    assert lines[5].split() == ["999", "9.99", "4e-07", "0.9500"]


def test_config_file_with_lr_and_momentum_tables(tmp_path, capsys) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        "[schedule.lr]\nname = 'cosine_restarts'\nmax_lr = 1.0\ncycle_steps = 10\ncycle_mult = 2\n"
        "[schedule.momentum]\nname = 'constant'\nvalue = 0.9\n"
    )
    code = main(["schedule", "--config", str(config), "--set", "cycle_steps=20", "--no-plot"])
    assert code == 0
    out = capsys.readouterr().out
    assert "cosine_restarts(max_lr=1.0, cycle_steps=20, cycle_mult=2" in out
    rows = [line.split() for line in out.splitlines()[3:]]
    assert [row[0] for row in rows] == ["0", "19", "20", "59", "60", "139"]  # restarts and cycle ends
    assert rows[2][1:] == ["1", "0.9000"]


def test_auto_lr_is_previewed_relative_to_max_lr(capsys) -> None:
    argv = ["schedule", "cyclic", "--set", "base_lr=auto", "--set", "max_lr=auto", "--set", "step_size_up=5"]
    code = main([*argv, "--no-plot"])
    assert code == 0
    out = capsys.readouterr().out
    assert "note: max_lr='auto'" in out
    assert out.splitlines()[4].split() == ["0", "0.25", "0.9000"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["one_cylce", "--set", "max_lr=0.1"], "unknown schedule name 'one_cylce'; valid names: one_cycle,"),
        (["one_cycle", "--set", "max_lr=0.1"], "missing key(s) 'total_steps'"),
        (["one_cycle", "--set", "max_lr=0.1", "--set", "total_steps=100", "--set", "warm=3"], "valid keys:"),
        (["one_cycle", "--set", "max_lr=0.1", "--set", "total_steps=100", "--set", "pct_start=3"],
         "pct_start must be in (0, 1), got pct_start=3"),
        (["one_cycle", "--set", "max_lr"], "--set expects KEY=VALUE"),
        ([], "give a schedule NAME"),
        (["one_cycle", "--config", "x.toml"], "not both"),
        (["one_cycle", "--set", "max_lr=0.1", "--set", "total_steps=100", "--steps", "ten"],
         "--steps must be an integer >= 1, got 'ten'"),
        (["one_cycle", "--set", "max_lr=0.1", "--set", "total_steps=100", "--steps-per-epoch", "0"],
         "--steps-per-epoch must be an integer >= 1"),
        (["warmup_cosine", "--set", "max_lr=0.1", "--set", "total_steps=100", "--set", "warmup_steps=10",
          "--set", "max_momentum=0.9"], "only apply to one_cycle and cyclic"),
        (["--config", "missing.toml"], "No such file or directory"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["schedule", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("cadence schedule: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_invalid_toml_is_one_line(tmp_path, capsys) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[schedule\nname = 'one_cycle'\n")
    assert main(["schedule", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is not valid TOML" in err


def test_training_config_in_epochs(tmp_path, capsys) -> None:
    config = tmp_path / "train.toml"
    config.write_text(
        "[schedule]\nname = 'cyclic'\nbase_lr = 1e-4\nmax_lr = 1e-2\nstep_size_up_epochs = 2\n"
        "[train]\nepochs = 10\n"
    )
    assert main(["schedule", "--config", str(config), "--no-plot"]) == 2
    assert "pass --steps-per-epoch N" in capsys.readouterr().err
    assert main(["schedule", "--config", str(config), "--steps-per-epoch", "50", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "cyclic(base_lr=0.0001, max_lr=0.01, step_size_up=100," in out
    assert out.splitlines()[-1].split()[:2] == ["499", "9.98"]  # the run's 10 epochs are drawn
    config.write_text("[schedule]\nname = 'one_cycle'\nmax_lr = 0.1\n[train]\nepochs = 10\n")
    assert main(["schedule", "--config", str(config), "--no-plot"]) == 2
    assert "takes total_steps from the run" in capsys.readouterr().err
    assert main(["schedule", "--config", str(config), "--steps-per-epoch", "30", "--no-plot"]) == 0
    assert "one_cycle(max_lr=0.1, total_steps=300," in capsys.readouterr().out
