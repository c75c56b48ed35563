"""Trainer features: accumulation, clipping, smoothing, precision, divergence, early stopping, records."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trainer_helpers import PairLoader, as_list, make_data, make_model

from cadence.callbacks.early_stopping import EarlyStopping
from cadence.callbacks.progress import ProgressBar
from cadence.errors import ConfigError, DivergenceError
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer, accuracy


def trainer_for(model=None, data=None, **options):
    inputs, targets = make_data(samples=32)
    model = model if model is not None else make_model()
    options.setdefault("progress", False)
    options.setdefault("epochs", 1)
    optimizer = options.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, optimizer, F.cross_entropy, data or as_list(inputs, targets, 8), **options)


def test_accumulation_equals_one_large_batch():
    inputs, targets = make_data(samples=32)
    big = make_model(seed=1)
    trainer_for(big, as_list(inputs, targets, 16), epochs=2).fit()
    small = make_model(seed=1)
    state = trainer_for(small, as_list(inputs, targets, 4), epochs=2, accumulation_steps=4).fit()
    assert state.step == 4
    for name, value in big.state_dict().items():
        assert torch.allclose(value, small.state_dict()[name], atol=1e-6), name


def test_gradient_clipping_bounds_the_update():
    model = make_model()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    trainer_for(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0), total_steps=1, grad_clip=1e-3
    ).fit()
    change = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert change.norm() == pytest.approx(1e-3, rel=1e-4)


def test_label_smoothing_gives_soft_targets_before_on_batch_start_and_infers_num_classes():
    seen = []

    class Look(Callback):
        def on_batch_start(self, state):
            seen.append(state.batch[1])

    inputs, targets = make_data(samples=16)
    data = as_list(inputs, targets, 8)  # plain list: no num_classes attribute; inferred from the output
    state = trainer_for(data=data, label_smoothing=0.3, callbacks=[Look()], eval_data=data).fit()
    assert state.num_classes == 3
    expected = F.one_hot(targets[:8], 3).float() * 0.7 + 0.1
    assert torch.allclose(seen[0], expected)
    assert "val_accuracy" in state.metrics


def test_accuracy_accepts_labels_and_soft_targets():
    outputs = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert accuracy(outputs, torch.tensor([0, 1, 1])).item() == pytest.approx(2 / 3)
    assert accuracy(outputs, torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])).item() == pytest.approx(
        2 / 3
    )


def test_custom_metric_is_prefixed():
    def error_rate(outputs, targets):
        return 1.0 - accuracy(outputs, targets)

    inputs, targets = make_data(samples=16)
    metrics = trainer_for(metrics=("accuracy", error_rate)).evaluate(as_list(inputs, targets, 5))
    assert sorted(metrics) == ["val_accuracy", "val_error_rate", "val_loss"]
    assert metrics["val_accuracy"] + metrics["val_error_rate"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": None}, "epochs or total_steps"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"schedules": {"learning_rate": 0.1}}, "allowed"),
        ({"on_divergence": "ignore"}, "on_divergence"),
        ({"precision": "fp8"}, "precision"),
        ({"metrics": ("f1",)}, "unknown metric"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"grad_clip": -1.0}, "grad_clip"),
    ],
)
def test_bad_arguments_name_the_field(options, message):
    with pytest.raises(ConfigError, match=message):
        trainer_for(**options)


class ExplodeAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_start(self, state):
        if state.step == self.step:
            inputs, targets = state.batch
            state.batch = (inputs * float("nan"), targets)


def test_divergence_stops_at_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model = make_model()
    schedules = {"lr": lambda step: 0.01 * (step + 1)}
    trainer = trainer_for(
        model,
        epochs=3,
        schedules=schedules,
        callbacks=[ExplodeAt(6)],
        run_dir=tmp_path,
        checkpoint_every_steps=2,
        eval_data=[make_data(samples=8)],
        log_every_n_steps=1,  # read before every update: the diverged one is not applied
    )
    state = trainer.fit()
    assert state.step == 6
    assert "diverged at step 6" in state.stop_reason
    assert "lr=0.07" in state.stop_reason
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "diverged"
    assert "diverged at step 6" in meta["error"]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"
    names = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000004.pt", "step-00000006.pt"]
    resumed = trainer_for(
        make_model(), epochs=3, schedules=schedules, callbacks=[ExplodeAt(-1)], run_dir=tmp_path
    )
    assert resumed.fit(resume="latest").step == 12


def test_divergence_is_caught_at_the_next_read_naming_the_steps(tmp_path):
    # 12 steps over 3 epochs, read every 4: step 5 goes NaN and is found at the read after step 8.
    schedules = {"lr": lambda step: 0.01 * (step + 1)}
    trainer = trainer_for(
        epochs=3,
        schedules=schedules,
        callbacks=[ExplodeAt(5)],
        run_dir=tmp_path,
        checkpoint_every_steps=6,
        checkpoint_every_epochs=None,
        eval_data=[make_data(samples=8)],
        log_every_n_steps=4,
    )
    state = trainer.fit()
    assert trainer.status == "diverged"
    assert state.step == 6  # the checkpoint at step 6 reads first, finds step 5 and is not written
    assert "diverged at step 5" in state.stop_reason
    assert "lr=0.06" in state.stop_reason
    assert "updates of steps 5 to 5 were applied" in state.stop_reason
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["kind"] == "train"] == [1, 2, 3, 4, 5]
    # the first epoch's evaluation, none after the divergence
    assert [line["step"] for line in lines if line["kind"] == "eval"] == [4]


def test_divergence_can_raise(tmp_path):
    trainer = trainer_for(callbacks=[ExplodeAt(1)], on_divergence="raise", run_dir=tmp_path)
    with pytest.raises(DivergenceError, match="step 1") as raised:
        trainer.fit()
    assert raised.value.step == 1
    assert raised.value.lr == pytest.approx(0.1)
    assert json.loads((tmp_path / "meta.json").read_text())["status"] == "diverged"


def test_an_escaping_exception_marks_the_run_failed(tmp_path):
    class Broken(Callback):
        def on_step_end(self, state):
            raise ValueError("broken callback")

    with pytest.raises(ValueError, match="broken callback"):
        trainer_for(callbacks=[Broken()], run_dir=tmp_path).fit()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "failed"
    assert meta["error"] == "ValueError: broken callback"


def test_early_stopping_stops_and_records_why(tmp_path):
    inputs, targets = make_data(samples=16)
    stopper = EarlyStopping(monitor="val_loss", patience=2, min_delta=10.0)  # nothing improves by 10
    state = trainer_for(
        epochs=20, eval_data=as_list(inputs, targets, 8), callbacks=[stopper], run_dir=tmp_path
    ).fit()
    assert state.epoch == 3  # first evaluation sets the best, two without improvement stop
    assert stopper.stopped_step == state.step == 12
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "stopped"
    assert "early stopping" in summary["extra"]["stop_reason"]
    with pytest.raises(ConfigError, match="mode"):
        EarlyStopping(mode="lowest")


def test_early_stopping_names_missing_metrics():
    state_like = type("S", (), {"metrics": {"val_loss": 1.0}, "step": 0})()
    with pytest.raises(ConfigError, match="val_accuracy_top5"):
        EarlyStopping(monitor="val_accuracy_top5").on_eval_end(state_like)


def test_run_directory_records(tmp_path):
    inputs, targets = make_data(samples=32)
    config = {"train": {"epochs": 2, "seed": 0}, "schedule": {"lr": {"name": "constant", "value": 0.1}}}
    model = make_model()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0),
        F.cross_entropy,
        PairLoader(inputs, targets, 8),
        epochs=2,
        schedules={"lr": 0.1, "momentum": 0.9},
        eval_data=as_list(inputs, targets, 16),
        run_dir=tmp_path,
        config=config,
        name="baseline",
        csv=True,
        progress=False,
    )
    trainer.fit()
    meta = json.loads((tmp_path / "meta.json").read_text())
    for key in (
        "cadence_version",
        "torch_version",
        "python_version",
        "platform",
        "git_revision",
        "started_at",
    ):
        assert key in meta
    assert meta["status"] == "completed"
    assert meta["schedules"] == {"lr": "0.1", "momentum": "0.9"}
    assert (meta["name"], meta["seed"], meta["world_size"], meta["device"]) == ("baseline", 0, 1, "cpu")
    assert (meta["total_steps"], meta["steps_per_epoch"]) == (8, 4)
    assert meta["wall_time"] > 0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [record for record in records if record["kind"] == "train"]
    evals = [record for record in records if record["kind"] == "eval"]
    assert [record["step"] for record in train] == list(range(1, 9))
    assert set(train[0]) == {"kind", "step", "epoch", "lr", "momentum", "loss", "time"}
    assert (train[0]["epoch"], train[0]["lr"], train[0]["momentum"]) == (0.25, 0.1, 0.9)
    assert [(record["step"], record["epoch"]) for record in evals] == [(4, 1.0), (8, 2.0)]
    assert set(evals[0]) == {"kind", "step", "epoch", "time", "val_loss", "val_accuracy"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == 8
    assert summary["final"]["val_loss"] == evals[-1]["val_loss"]
    assert summary["best"]["val_loss"] == min(record["val_loss"] for record in evals)
    assert summary["skipped_steps"] == 0
    tomllib = pytest.importorskip("tomllib")
    assert tomllib.loads((tmp_path / "config.toml").read_text()) == config
    assert (tmp_path / "train.csv").read_text().splitlines()[0] == "step,epoch,lr,momentum,loss,time"
    assert len((tmp_path / "eval.csv").read_text().splitlines()) == 3


def test_fp16_skipped_updates_are_counted_and_logged(tmp_path):
    class InfGradient(Callback):
        def on_after_backward(self, state):
            if state.step == 1:
                next(state.model.parameters()).grad[0, 0] = float("inf")

    model = make_model()
    state = trainer_for(
        model, precision="fp16", callbacks=[InfGradient()], run_dir=tmp_path, grad_clip=5.0
    ).fit()
    assert state.skipped_steps == 1
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records if record.get("skipped")] == [2]
    assert json.loads((tmp_path / "summary.json").read_text())["skipped_steps"] == 1
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())


def test_bf16_training_on_cpu_learns():
    dtypes = []

    class Look(Callback):
        def on_after_backward(self, state):
            dtypes.append(state.outputs.dtype)

    inputs, targets = make_data(samples=64)
    model = make_model()
    trainer = trainer_for(
        model,
        as_list(inputs, targets, 16),
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-2),
        epochs=6,
        precision="bf16",
        callbacks=[Look()],
    )
    before = trainer.evaluate([(inputs, targets)])["val_loss"]
    trainer.fit()
    assert set(dtypes) == {torch.bfloat16}
    assert next(model.parameters()).dtype == torch.float32
    assert trainer.evaluate([(inputs, targets)])["val_loss"] < 0.8 * before


def test_channels_last_and_compile_are_applied(monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    data = [(torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 0]))]
    trainer_for(model, data, channels_last=True, compile=True).fit()
    assert compiled == [model]
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_progress_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    inputs, targets = make_data(samples=16)
    trainer_for(epochs=2, callbacks=[ProgressBar(stream=stream)], eval_data=[(inputs, targets)]).fit()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2  step 8/8  loss ")
    assert "samples/s" in lines[1]
    assert "val_accuracy" in lines[1]


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    trainer_for(epochs=2, callbacks=[ProgressBar(stream=stream, refresh_seconds=0.0)]).fit()
    text = stream.getvalue()
    assert "epoch 1/2" in text
    assert "epoch 2/2" in text
    assert "samples/s" in text
    assert "lr 0.1" in text


def test_loss_is_logged_per_step_and_matches_a_hand_written_loop():
    inputs, targets = make_data(samples=32)
    data = as_list(inputs, targets, 8)
    model = make_model(seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []

    class Collect(Callback):
        def on_step_end(self, state):
            losses.append(state.last_loss)

    Trainer(
        model,
        optimizer,
        F.cross_entropy,
        data,
        epochs=2,
        callbacks=[Collect()],
        progress=False,
        log_every_n_steps=1,  # state.last_loss is fresh at every step
    ).fit()
    reference = make_model(seed=3)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    expected = []
    for _ in range(2):
        for x, y in data:
            loss = F.cross_entropy(reference(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            expected.append(loss.item())
    assert losses == expected
    assert all(math.isfinite(value) for value in losses)


@pytest.mark.parametrize("every", [1, 3, 100])
def test_every_step_is_logged_whatever_the_read_interval(tmp_path, every):
    inputs, targets = make_data(samples=32)
    data = as_list(inputs, targets, 8)
    model = make_model(seed=3)
    run_dir = tmp_path / str(every)
    trainer_for(model, data, epochs=2, run_dir=run_dir, log_every_n_steps=every).fit()
    reference = make_model(seed=3)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    expected = []
    for _ in range(2):
        for x, y in data:
            loss = F.cross_entropy(reference(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            expected.append(loss.item())
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["kind"] == "train"]
    assert [line["step"] for line in train] == list(range(1, 9))
    assert [line["loss"] for line in train] == expected


def test_log_every_n_steps_is_checked():
    with pytest.raises(ConfigError, match="log_every_n_steps"):
        trainer_for(log_every_n_steps=0)


def test_auto_learning_rate_is_resolved_before_on_fit_start_and_kept_on_resume(tmp_path, monkeypatch):
    import cadence.lr_finder
    from cadence.schedules import one_cycle

    calls = []

    def fake_resolve(schedules, **pieces):
        calls.append(pieces)
        resolved = {
            key: value.with_lr(0.05) if value.needs_lr_finder else value for key, value in schedules.items()
        }
        return resolved, None

    monkeypatch.setattr(cadence.lr_finder, "resolve_auto_schedules", fake_resolve)
    seen = []

    class Look(Callback):
        def on_fit_start(self, state):
            seen.append(len(calls))

        def on_batch_start(self, state):
            seen.append(state.hyperparams["lr"])

    def build():
        return trainer_for(
            epochs=2,
            schedules={"lr": one_cycle(max_lr="auto", total_steps=8)},
            run_dir=tmp_path,
            callbacks=[Look()],
            accumulation_steps=2,
        )

    trainer = build()
    trainer.fit()
    assert seen[0] == 1
    assert calls[0]["trainer_options"]["accumulation_steps"] == 2
    assert calls[0]["trainer_options"]["precision"] == "fp32"
    assert calls[0]["run_dir"] == tmp_path
    assert calls[0]["total_steps"] == trainer.state.total_steps  # the run's steps, which the race compresses
    assert trainer.schedules["lr"] == one_cycle(max_lr=0.05, total_steps=8)
    assert seen[1:] == [trainer.schedules["lr"](step) for step in (0, 0, 1, 1, 2, 2, 3, 3)]
    assert "max_lr=0.05" in json.loads((tmp_path / "meta.json").read_text())["schedules"]["lr"]
    resumed = build()
    resumed.fit(resume=tmp_path / "checkpoints" / "step-00000004.pt")
    assert len(calls) == 1  # the resolved schedule came from the checkpoint
    assert resumed.schedules["lr"] == trainer.schedules["lr"]


def test_built_in_bar_without_tqdm(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # importing it now raises ImportError

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    trainer_for(callbacks=[ProgressBar(stream=stream, refresh_seconds=0.0)]).fit()
    text = stream.getvalue()
    assert "\repoch 1/1 [" in text
    assert "] 4/4 loss" in text
    assert text.endswith("\n")


def test_tensorboard_needs_its_package():
    import importlib.util

    from cadence.errors import MissingDependencyError

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    with pytest.raises(MissingDependencyError, match="cadence\\[tensorboard\\]"):
        trainer_for(tensorboard=True)


def test_soft_targets_with_a_loss_that_cannot_take_them_are_refused_up_front() -> None:
    from cadence.callbacks.mixup import Mixup
    from cadence.errors import ConfigError

    inputs, targets = make_data()
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(inputs, targets)]
    with pytest.raises(ConfigError, match=r"label_smoothing=0.1 produces soft targets.*NLLLoss"):
        Trainer(model, optimizer, torch.nn.NLLLoss(), data, epochs=1, label_smoothing=0.1)
    with pytest.raises(ConfigError, match=r"Mixup produces soft targets.*MSELoss"):
        Trainer(model, optimizer, torch.nn.MSELoss(), data, epochs=1, callbacks=[Mixup(alpha=0.2)])


def test_callbacks_see_the_run_schedules_on_the_state() -> None:
    from cadence.schedules import snapshot_cosine

    seen = {}

    class Spy(Callback):
        def on_fit_start(self, state):
            seen.update(state.schedules)

    inputs, targets = make_data()
    model = make_model()
    schedule = snapshot_cosine(0.1, total_steps=6, num_snapshots=2)
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.nn.functional.cross_entropy,
        as_list(inputs, targets, 8),
        total_steps=6,
        schedules={"lr": schedule},
        callbacks=[Spy()],
        progress=False,
    )
    trainer.fit()
    assert seen == {"lr": schedule}
