"""cadence in the Hugging Face Trainer: tiny real runs on the CPU (24 optimizer steps), nothing downloaded."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in these tests may download
os.environ["TRANSFORMERS_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from cadence.averaging import EMAWeights, SWAWeights  # noqa: E402
from cadence.callbacks import EMA, SWA, FreezeOut, GradualUnfreezing, SnapshotEnsemble  # noqa: E402
from cadence.errors import ConfigError  # noqa: E402
from cadence.freezing import freezeout_factor, freezeout_param_groups, freezeout_times  # noqa: E402
from cadence.integrations.huggingface import STATE_FILE, CadenceTrainerCallback  # noqa: E402
from cadence.schedules import one_cycle, snapshot_cosine  # noqa: E402
from cadence.transfer.param_groups import layer_groups  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore::UserWarning")]

STEPS_PER_EPOCH = 8
TOTAL = 24  # three epochs


def make_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


class TinyModel(nn.Module):
    """A model as the HF Trainer expects one: keyword inputs, a dict with the loss."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.net = make_net(seed)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        if labels is None:  # as Hugging Face models do: no labels, no loss
            return {"logits": logits}
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


class Pairs(Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(8 * STEPS_PER_EPOCH, 4, generator=generator)
        self.y = torch.randint(0, 3, (8 * STEPS_PER_EPOCH,), generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.y[index]}


class Probe(transformers.TrainerCallback):
    """What the optimizer uses at each update, and the weights after it."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}
        self.momenta: dict[int, list[float]] = {}
        self.trainable: dict[int, list[bool]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        groups = optimizer.param_groups
        self.lrs[state.global_step] = [group["lr"] for group in groups]
        self.momenta[state.global_step] = [
            group.get("momentum", group.get("betas", (None,))[0]) for group in groups
        ]
        self.trainable[state.global_step] = [
            all(p.requires_grad for p in group["params"]) for group in groups
        ]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.weights[state.global_step - 1] = copy.deepcopy(model.net.state_dict())


def sgd(model: TinyModel, freezeout: bool = False) -> torch.optim.Optimizer:
    if freezeout:
        return torch.optim.SGD(freezeout_param_groups(layer_groups(model.net)), lr=0.1, momentum=0.9)
    first, rest = list(model.net[0].parameters()), [p for m in model.net[1:] for p in m.parameters()]
    return torch.optim.SGD([{"params": first, "lr_scale": 0.5}, {"params": rest}], lr=0.1, momentum=0.9)


def train(
    model, callbacks, output_dir, *, optimizer=None, resume=None, save_steps=None, epochs=3, accumulate=1
):
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=8 // accumulate,
        gradient_accumulation_steps=accumulate,
        learning_rate=0.1,
        lr_scheduler_type="constant",
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Pairs(),
        callbacks=callbacks,
        optimizers=(optimizer if optimizer is not None else sgd(model), None),
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_lr_and_momentum_of_every_group_at_every_step_are_cadence_s(tmp_path):
    schedule = one_cycle(0.1, total_steps=TOTAL)
    momentum = schedule.momentum()
    probe = Probe()
    cadence = CadenceTrainerCallback({"lr": schedule, "momentum": momentum})
    train(TinyModel(), [cadence, probe], tmp_path)
    assert sorted(probe.lrs) == list(range(TOTAL))
    for step in range(TOTAL):
        assert probe.lrs[step] == pytest.approx([0.5 * schedule(step), schedule(step)], rel=1e-12)
        assert probe.momenta[step] == pytest.approx([momentum(step)] * 2, rel=1e-12)
    assert cadence.state.total_steps == TOTAL


def test_with_gradient_accumulation_the_values_follow_the_updates(tmp_path):
    schedule = one_cycle(0.1, total_steps=TOTAL)
    probe = Probe()
    cadence = CadenceTrainerCallback({"lr": schedule}, [SnapshotEnsemble(at_steps=[5])], submodule="net")
    train(TinyModel(), [cadence, probe], tmp_path, accumulate=2)  # 2 micro-batches of 4 per update
    assert sorted(probe.lrs) == list(range(TOTAL))
    assert [probe.lrs[step][1] for step in range(TOTAL)] == pytest.approx([schedule(s) for s in range(TOTAL)])
    saved = torch.load(tmp_path / "snapshots" / "snapshot-1.pt", weights_only=True)
    assert all(torch.equal(saved[name], value) for name, value in probe.weights[5].items())


@pytest.mark.parametrize("at", [8, 12])  # an epoch boundary, and mid-epoch
def test_resume_from_an_hf_checkpoint_continues_exactly(tmp_path, at):
    schedule = one_cycle(0.1, total_steps=TOTAL)

    def cadence():
        return CadenceTrainerCallback({"lr": schedule}, [SWA(start=10), EMA(decay=0.9)])

    straight_probe, straight = Probe(), TinyModel()
    straight_cadence = cadence()
    train(straight, [straight_cadence, straight_probe], tmp_path / "straight")

    first_probe = Probe()
    # A full run that saves checkpoints every 4 steps; the resumed run starts again from step `at`.
    train(TinyModel(), [cadence(), first_probe], tmp_path / "run", save_steps=4)
    assert (tmp_path / "run" / f"checkpoint-{at}" / STATE_FILE).is_file()
    resumed_probe, resumed_model = Probe(), TinyModel(seed=5)
    resumed = cadence()
    train(
        resumed_model,
        [resumed, resumed_probe],
        tmp_path / "run",
        resume=str(tmp_path / "run" / f"checkpoint-{at}"),
    )

    assert sorted(resumed_probe.lrs) == list(range(at, TOTAL))
    assert {**{s: first_probe.lrs[s] for s in range(at)}, **resumed_probe.lrs} == straight_probe.lrs
    for name, value in straight.net.state_dict().items():
        assert torch.equal(resumed_model.net.state_dict()[name], value), name  # bitwise
    for done, again in zip(straight_cadence.bridge.callbacks, resumed.bridge.callbacks):
        assert again.num_averaged == done.num_averaged
        for name, value in done.averaged.state_dict().items():
            assert torch.equal(again.averaged.state_dict()[name], value), name


def test_resume_without_the_cadence_state_is_refused(tmp_path):
    train(TinyModel(), [Probe()], tmp_path, save_steps=8)  # checkpoints without the cadence callback
    with pytest.raises(ConfigError, match=STATE_FILE):
        train(
            TinyModel(),
            [CadenceTrainerCallback({"lr": 0.1}, [EMA()])],
            tmp_path,
            resume=str(tmp_path / "checkpoint-8"),
        )


def test_snapshots_are_saved_at_the_cycle_ends(tmp_path):
    schedule = snapshot_cosine(0.1, total_steps=TOTAL, num_snapshots=3)
    probe = Probe()
    cadence = CadenceTrainerCallback({"lr": schedule}, [SnapshotEnsemble(schedule=schedule)])
    train(TinyModel(), [cadence, probe], tmp_path)
    ends = schedule.cycle_ends(TOTAL)
    assert ends == [7, 15, 23]
    for k, step in enumerate(ends, start=1):
        saved = torch.load(tmp_path / "snapshots" / f"snapshot-{k}.pt", weights_only=True)
        assert all(torch.equal(saved[f"net.{name}"], value) for name, value in probe.weights[step].items())


def test_swa_and_ema_equal_the_plain_loop_helpers(tmp_path):
    probe = Probe()
    swa, ema = SWA(start=10, update_every=3), EMA(decay=0.8)
    train(TinyModel(), [CadenceTrainerCallback({"lr": 0.05}, [swa, ema]), probe], tmp_path)
    replay = TinyModel()
    plain_swa, plain_ema = SWAWeights(replay, start_step=10, update_every=3), EMAWeights(replay, decay=0.8)
    for step in range(TOTAL):
        replay.net.load_state_dict(probe.weights[step])
        plain_swa.update(replay, step)
        plain_ema.update(replay, step)
    assert swa.num_averaged == plain_swa.num_averaged == 5
    assert ema.num_averaged == plain_ema.num_averaged == TOTAL
    for callback, plain in ((swa, plain_swa), (ema, plain_ema)):
        for name, value in plain.module.state_dict().items():
            assert torch.equal(callback.average.module.state_dict()[name], value), name


def test_freezeout_freezes_the_right_groups_at_the_right_steps(tmp_path):
    probe = Probe()
    model = TinyModel()
    groups = layer_groups(model.net)
    cadence = CadenceTrainerCallback({"lr": 0.1}, [FreezeOut(t0=0.5, cubic=False, groups=groups)])
    train(model, [cadence, probe], tmp_path, optimizer=sgd(model, freezeout=True))
    times = freezeout_times(3, 0.5, cubic=False)
    for step in range(TOTAL):
        frozen = [step / TOTAL >= t for t in times]
        assert probe.trainable[step] == [not f for f in frozen], step
        expected = [0.1 * freezeout_factor(t, TOTAL)(step) for t in times]
        assert probe.lrs[step] == pytest.approx(expected, abs=1e-15), step
    assert torch.equal(probe.weights[11]["0.weight"], probe.weights[23]["0.weight"])


def test_gradual_unfreezing_trains_the_stages_groups(tmp_path):
    probe = Probe()
    model = TinyModel()
    stages = [{"at_step": 0, "groups": 1}, {"at_epoch": 1, "groups": 2}, {"at": 2 / 3, "groups": "all"}]
    unfreezing = GradualUnfreezing(stages, groups=layer_groups(model.net), train_bn=False)
    train(
        model,
        [CadenceTrainerCallback({"lr": 0.1}, [unfreezing]), probe],
        tmp_path,
        optimizer=sgd(model, True),
    )
    for step in range(TOTAL):
        trainable = 1 if step < 8 else 2 if step < 16 else 3
        assert probe.trainable[step] == [i >= 3 - trainable for i in range(3)], step
        assert probe.lrs[step] == [0.1 if i >= 3 - trainable else 0.0 for i in range(3)], step


def test_auto_lr_races_on_dict_batches_and_leaves_the_model_untouched(tmp_path):
    from cadence.integrations.huggingface import resolve_auto_lr

    dataset = Pairs()
    batches = [
        {"x": dataset.x[i : i + 8], "labels": dataset.y[i : i + 8]} for i in range(0, len(dataset), 8)
    ] * 4
    model = TinyModel()
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedules, selection = resolve_auto_lr(
        model,
        batches,
        {"lr": one_cycle(max_lr="auto", total_steps=40)},
        optimizer=optimizer,
        total_steps=40,
        run_dir=tmp_path,
        selection_options={"budget": 0.5},
    )
    assert selection is not None
    assert selection.candidates[0] <= selection.value <= selection.candidates[-1] * 2**0.5
    assert schedules["lr"](0) == pytest.approx(one_cycle(selection.value, total_steps=40)(0))
    assert (tmp_path / "lr_selection.json").is_file()
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])  # raced on copies
    again, reused = resolve_auto_lr(  # a resumed run reuses the record and trains nothing
        model, batches, {"lr": one_cycle(max_lr="auto", total_steps=40)}, optimizer=optimizer,
        total_steps=40, run_dir=tmp_path,
    )  # fmt: skip
    assert reused is None
    assert again["lr"](5) == pytest.approx(schedules["lr"](5))
    with pytest.raises(ConfigError, match="labels"):
        resolve_auto_lr(
            model, [{"x": dataset.x[:8]}] * 3, {"lr": one_cycle(max_lr="auto", total_steps=40)},
            optimizer=optimizer, total_steps=40,
        )  # fmt: skip
