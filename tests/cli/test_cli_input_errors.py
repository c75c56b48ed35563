"""Bad input on the command line exits with code 2 and one line naming the problem, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadence.cli.main import main

CONFIG = """
[data]
name = "synthetic"
num_train = 32
num_test = 16
input_shape = [4]

[model]
name = "mlp"
hidden_sizes = [8]

[train]
epochs = 1
progress = "off"
"""


def _one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"cadence {command}: error: ")
    return lines[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file.txt"
    path.write_text("not a directory\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize(
    ("command", "option"),
    [("train", "--run-dir"), ("compare", "--out"), ("demo", "--out"), ("find-lr", "--output")],
)
def test_an_output_directory_that_is_a_file_is_refused(command, option, a_file, config, capsys) -> None:
    argv = {
        "train": ["train", str(config), "--run-dir", str(a_file)],
        "compare": ["compare", str(config), "--seeds", "1", "--out", str(a_file)],
        "demo": ["demo", "--quick", "--out", str(a_file)],
        "find-lr": ["find-lr", str(config), "--output", str(a_file)],
    }[command]
    assert main(argv) == 2
    line = _one_error_line(capsys, command)
    assert f"{option} {a_file}: is a file; give a directory" in line


def test_an_output_directory_below_a_file_is_refused(a_file, capsys) -> None:
    assert main(["demo", "--quick", "--out", str(a_file / "sub")]) == 2
    assert f"lies below the file {a_file}" in _one_error_line(capsys, "demo")


def test_schedule_config_that_is_a_directory(tmp_path: Path, capsys) -> None:
    assert main(["schedule", "--config", str(tmp_path)]) == 2
    assert f"--config {tmp_path}: is a directory; give a TOML file" in _one_error_line(capsys, "schedule")


@pytest.mark.parametrize(
    ("device", "message"),
    [("tpu9", "--device = 'tpu9': not a device"), ("cuda", "--device = 'cuda': CUDA is not available")],
)
def test_ensemble_device_is_checked(device, message, tmp_path: Path, capsys) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["ensemble", str(tmp_path), "--device", device]) == 2
    assert message in _one_error_line(capsys, "ensemble")


def test_corrupt_snapshot_file(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "snapshots").mkdir(parents=True)
    (run_dir / "config.toml").write_text(CONFIG)
    (run_dir / "snapshots" / "snapshot-0.pt").write_bytes(b"this is not a checkpoint")
    (run_dir / "snapshots" / "snapshot-1.pt").write_bytes(b"")
    assert main(["ensemble", str(run_dir)]) == 2
    line = _one_error_line(capsys, "ensemble")
    assert "snapshot-0.pt: not a readable snapshot of this run's model" in line


def test_a_mistyped_option_prints_the_subcommand_usage(capsys) -> None:
    assert main(["schedule", "one_cycle", "--stpes", "10"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("usage: cadence schedule ")
    assert "cadence schedule: error: unrecognized arguments: --stpes 10" in err


def test_help_returns_0_in_process(capsys) -> None:
    assert main(["compare", "--help"]) == 0
    assert "usage: cadence compare" in capsys.readouterr().out


README_CYCLIC = ["schedule", "cyclic", "--set", "base_lr=1e-3", "--set", "max_lr=6e-3"]
README_CYCLIC += ["--set", "step_size_up=200", "--set", "mode=triangular2"]


def test_schedule_writes_nothing_unasked(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(README_CYCLIC) == 0
    assert list(tmp_path.iterdir()) == []
    assert "wrote" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("output", "written"),
    [
        ("configs", "configs/cyclic.png"),
        ("clr", "clr.png"),
        ("clr.svg", "clr.svg"),
        ("plots/clr", "plots/clr.png"),
    ],
)
def test_schedule_output_prints_the_path_it_writes(
    output, written, tmp_path: Path, monkeypatch, capsys
) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    assert main([*README_CYCLIC, "--output", output]) == 0
    assert (tmp_path / written).is_file()
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {Path(written)}"
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert files == [str(Path(written))]


def test_schedule_output_with_an_unknown_suffix_is_refused(tmp_path: Path, capsys) -> None:
    assert main([*README_CYCLIC, "--output", str(tmp_path / "clr.txt")]) == 2
    assert "cannot draw a .txt file; use one of .png, .svg, .pdf" in _one_error_line(capsys, "schedule")


def test_train_on_a_device_that_is_not_there(config, tmp_path: Path, capsys) -> None:
    argv = ["train", str(config), "--set", "train.device=tpu9", "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "train.device = 'tpu9': not a device" in _one_error_line(capsys, "train")


def test_a_diverged_run_reports_without_traceback(config, tmp_path: Path, capsys) -> None:
    argv = ["train", str(config), "--set", "schedule.name=constant", "--set", "schedule.value=1e12"]
    argv += ["--set", "train.epochs=3", "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "cadence train: diverged after" in captured.out
    assert "val_loss None" in captured.out
