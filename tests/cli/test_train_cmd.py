import dataclasses
import importlib.util
import json
import warnings

import pytest

from cadence.cli.main import main

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

HAVE_TRAINER = (
    importlib.util.find_spec("cadence.train.trainer") is not None
    and importlib.util.find_spec("cadence.schedules") is not None
)


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--set", "train.epoch=3"], "unknown key train.epoch (did you mean 'epochs'?)"),
        (["--set", "model.name=cnn2d"], "unknown model 'cnn2d'"),
        (["--set", "nosection.key=1"], "unknown section 'nosection'"),
        (["--resume"], "--resume needs --run-dir"),
        (["--nproc", "0"], "--nproc must be >= 1"),
    ],
)
def test_errors_exit_2_with_one_line(config_path, capsys, overrides, message):
    assert main(["train", str(config_path), *overrides]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cadence train: error: ")
    assert message in error
    assert error.count("\n") == 1
    assert "Traceback" not in error


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_nproc_launches_processes_with_the_same_arguments(config_path, tmp_path, monkeypatch):
    import cadence.distributed

    calls = []

    def launch_local(nproc, argv):
        calls.append((nproc, list(argv)))
        return 0

    monkeypatch.setattr(cadence.distributed, "launch_local", launch_local)
    run_dir = tmp_path / "run"
    argv = ["train", str(config_path), "--nproc", "2", "--run-dir", str(run_dir), "--set", "train.seed=3"]
    assert main(argv) == 0
    assert calls == [(2, ["train", str(config_path), "--run-dir", str(run_dir), "--set", "train.seed=3"])]


def test_nproc_inside_torchrun_is_refused(config_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", str(config_path), "--nproc", "2", "--run-dir", str(tmp_path / "run")]) == 2
    assert "already started by torchrun" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TRAINER, reason="needs cadence.train.trainer and cadence.schedules")
def test_train_end_to_end(config_path, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(config_path), "--run-dir", str(run_dir), "--set", "train.seed=1"]) == 0
    output = capsys.readouterr().out
    assert "completed after 12 steps" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == 12
    assert summary["final"]["val_accuracy"] > 0.5  # separable clusters: learned in 12 steps
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = [record["lr"] for record in records if record["kind"] == "train"]
    assert len(lrs) == 12
    assert max(lrs) == pytest.approx(0.2, rel=0.05)  # one-cycle peak over total_epochs = 2 (12 steps)
    assert lrs[0] == pytest.approx(0.2 / 25)
    assert "seed = 1" in (run_dir / "config.toml").read_text()  # the resolved config, overrides applied


class CrashError(RuntimeError):
    pass


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TRAINER, reason="needs cadence.train.trainer and cadence.schedules")
def test_config_run_resumes_mid_epoch_exactly(tmp_path):
    import torch

    from cadence.config import apply_overrides, build_experiment, parse_config, run_config
    from cadence.config.run import trainer_for

    config = apply_overrides(parse_config(TINY), ["train.checkpoint_every_steps=2"])
    straight = run_config(config, tmp_path / "straight")

    experiment = build_experiment(config)
    training_losses = []

    def crashing_loss(outputs, targets):
        if torch.is_grad_enabled():  # training, not evaluation
            training_losses.append(1)
            if len(training_losses) == 10:  # update 9: in the middle of epoch 2 (6 updates per epoch)
                raise CrashError("simulated crash")
        return experiment.loss_fn(outputs, targets)

    # The crashed half is the config's own Trainer (same fingerprint), with a loss that fails mid-epoch.
    trainer = trainer_for(dataclasses.replace(experiment, loss_fn=crashing_loss), tmp_path / "crashed")
    with pytest.raises(CrashError):
        trainer.fit()
    checkpoints = sorted(path.name for path in (tmp_path / "crashed" / "checkpoints").glob("*.pt"))
    assert checkpoints[-1] == "step-00000008.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a resume of the same config changes no setting
        resumed = run_config(config, tmp_path / "crashed", resume=True)
    lines = (tmp_path / "crashed" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if json.loads(line)["kind"] == "train"]
    assert steps == list(range(1, 13))
    assert resumed.step == straight.step == 12
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
