"""The CLI explains itself: --print-config, --dry-run, the key reference, completion and usage errors."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cadence.cli.main import main
from cadence.config import SECTIONS, TRAIN_KEYS, parse_config
from cadence.config.describe import config_reference, lr_selection_defaults, train_defaults
from cadence.config.fingerprint import config_fingerprint, resolved_config
from cadence.config.schema import LR_SELECTION_KEYS, _toml_repr

TINY = """
[data]
name = "synthetic"
num_train = 96
num_test = 32
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[optimizer]
name = "sgd"
momentum = 0.9

[schedule]
name = "one_cycle"
max_lr = 0.2
total_epochs = 2

[train]
epochs = 2
batch_size = 16
progress = "off"
device = "cpu"
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _shown(value):
    return "unset" if value is None else (_toml_repr(value) if isinstance(value, (bool, str)) else str(value))


def test_print_config_fills_defaults_and_round_trips(tiny_config, tmp_path, capsys):
    assert main(["train", str(tiny_config), "--print-config"]) == 0
    text = capsys.readouterr().out
    printed = parse_config(text, "printed")
    original = parse_config(TINY)
    # every default is written out: the Trainer's, the dataset loader's, the optimizer's
    assert printed["train"]["eval_batch_size"] == 1024
    assert printed["train"]["on_divergence"] == "stop"
    assert printed["train"]["accumulation_steps"] == 1
    assert printed["optimizer"]["lr"] == pytest.approx(0.01)  # cadence.optimizers default for sgd
    assert printed["optimizer"]["nesterov"] is False
    assert printed["data"]["drop_last"] is False
    assert "num_classes" not in printed["model"]  # taken from the data, as in the original run
    assert text.startswith('[data]\nname = "synthetic"')
    assert "# unset: " in text
    assert "grad_clip" in text
    assert '# method = "race"' in text  # the [lr_selection] defaults, as comments
    # the printed config is the same run: same resolved config, same fingerprint
    assert resolved_config(printed) == resolved_config(original)
    assert config_fingerprint(printed)["values"] == config_fingerprint(original)["values"]
    # and printing it again gives the same text
    again = tmp_path / "again.toml"
    again.write_text(text)
    assert main(["train", str(again), "--print-config"]) == 0
    assert capsys.readouterr().out == text
    assert not (tmp_path / "runs").exists()


def test_dry_run_builds_and_prints_the_plan(tiny_config, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(tiny_config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    # 96 examples / batch 16 = 6 steps per epoch, 2 epochs
    assert "steps: 12 (6 per epoch, accumulation 1)" in out
    assert "schedule lr: one_cycle(" in out
    assert "max_lr=0.2" in out
    assert "total_steps=12" in out
    assert "lr selection: none" in out
    assert "96 train, 32 test examples" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.toml"]  # nothing written


def test_dry_run_states_the_lr_race_plan(tiny_config, capsys):
    overrides = [
        "--set",
        'schedule.max_lr="auto"',
        "--set",
        "lr_selection.budget=2",
        "--set",
        "lr_selection.candidates=4",
    ]
    assert main(["train", str(tiny_config), "--dry-run", *overrides]) == 0
    out = capsys.readouterr().out
    assert "lr selection (lr = auto): a sweep of 100 steps from 1e-06 to 10" in out
    assert "a race of 4 candidates over ~24 steps in all (budget 2)" in out


def test_dry_run_refuses_a_bad_config_with_exit_2(tiny_config, capsys):
    assert main(["train", str(tiny_config), "--dry-run", "--set", "model.name=mpl"]) == 2
    err = capsys.readouterr().err
    assert "cadence train: error:" in err
    assert "mlp" in err
    assert "Traceback" not in err


def test_train_help_lists_every_schema_key_with_its_default(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--print-config" in out
    assert "--dry-run" in out
    for section in SECTIONS:
        assert f"[{section}]" in out
    defaults = train_defaults()
    lines = out.splitlines()
    for key in TRAIN_KEYS:
        line = next(line for line in lines if line.split() and line.split()[0] == key)
        assert line.rstrip().endswith(f"default {_shown(defaults[key])}"), line
    selection = lr_selection_defaults()
    for key in LR_SELECTION_KEYS:
        line = next(line for line in lines if line.split() and line.split()[0] == key)
        assert f"default {_shown(selection[key])}" in line, line
    assert "default 1024" in next(line for line in lines if line.split()[:1] == ["eval_batch_size"])
    assert 'one of "fp32", "bf16", "fp16"; default "fp32"' in out
    assert "one_cycle: max_lr" in out  # the schedules and their keys
    assert "[callbacks.swa]" in out


def test_config_help_one_section(capsys):
    assert main(["config-help", "lr_selection"]) == 0
    out = capsys.readouterr().out
    assert out == config_reference("lr_selection")
    assert out.startswith("[lr_selection]")
    assert "[train]" not in out
    assert "budget" in out
    assert "default 1.0" in out
    assert main(["config-help", "nope"]) == 2
    err = capsys.readouterr().err
    assert "usage: cadence config-help" in err
    assert "invalid choice" in err


def test_mistyped_option_prints_the_subcommand_usage(capsys):
    assert main(["train", "x.toml", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cadence train")
    assert "unrecognized arguments: --bogus" in err
    assert "Traceback" not in err


def test_completion_script_completes_commands_options_and_choices(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o filenames -F _cadence_complete cadence" in script
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")

    def complete(*words):
        program = script + f"COMP_WORDS=({' '.join(repr(w) for w in ('cadence', *words))}); "
        program += f"COMP_CWORD={len(words)}; _cadence_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
        result = subprocess.run(
            [bash, "-c", program], capture_output=True, text=True, env={**os.environ}, check=True
        )
        return result.stdout.split()

    assert "train" in complete("tr")
    assert complete("tr") == ["train"]
    assert set(complete("co")) == {"compare", "config-help", "completion"}
    assert "--print-config" in complete("train", "x.toml", "--pr")
    assert complete("compare", "--no-pro") == ["--no-progress"]
    assert set(complete("config-help", "")) == set(SECTIONS)
    assert complete("completion", "z") == ["zsh"]
    assert main(["completion", "zsh"]) == 0
    assert "bashcompinit" in capsys.readouterr().out


@pytest.mark.parametrize(
    "path", sorted(str(path) for path in (Path(__file__).parents[2] / "configs").rglob("*.toml"))
)
def test_print_config_of_every_shipped_config_is_the_same_run(path):
    from cadence.config import load_config, validate_config
    from cadence.config.describe import resolved_config_text

    original = load_config(path)
    printed = parse_config(resolved_config_text(original), "printed")
    validate_config(printed)
    # TOML has arrays, not tuples: compare as JSON, which is what the fingerprint digests
    assert json.dumps(resolved_config(printed), sort_keys=True) == json.dumps(
        resolved_config(original), sort_keys=True
    )
    assert config_fingerprint(printed)["digest"] == config_fingerprint(original)["digest"]
