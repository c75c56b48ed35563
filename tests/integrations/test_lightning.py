"""cadence in Lightning: tiny real runs on the CPU (24 optimizer steps), values checked step by step."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from cadence.averaging import EMAWeights, SWAWeights  # noqa: E402
from cadence.callbacks import EMA, SWA, FreezeOut, GradualUnfreezing, Mixup, SnapshotEnsemble  # noqa: E402
from cadence.ensembles import Ensemble  # noqa: E402
from cadence.errors import ConfigError  # noqa: E402
from cadence.freezing import freezeout_factor, freezeout_param_groups, freezeout_times  # noqa: E402
from cadence.integrations.lightning import CadenceCallback  # noqa: E402
from cadence.lr_finder import select_lr  # noqa: E402
from cadence.regularization import soft_cross_entropy  # noqa: E402
from cadence.schedules import one_cycle, snapshot_cosine  # noqa: E402
from cadence.transfer.param_groups import layer_groups  # noqa: E402

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*"),  # raised inside Lightning 2.6 itself
]

STEPS_PER_EPOCH = 8
TOTAL = 24  # three epochs


def make_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


class Tiny(pl.LightningModule):
    def __init__(self, seed: int = 0, optimizer: str = "sgd", freezeout: bool = False) -> None:
        super().__init__()
        self.net = make_net(seed)
        self.kind = optimizer
        self.freezeout = freezeout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        if self.freezeout:
            return torch.optim.SGD(freezeout_param_groups(layer_groups(self.net)), lr=0.1, momentum=0.9)
        first, rest = list(self.net[0].parameters()), [p for m in self.net[1:] for p in m.parameters()]
        groups = [{"params": first, "lr_scale": 0.5}, {"params": rest}]  # discriminative LRs
        if self.kind == "adam":
            return torch.optim.Adam(groups, lr=0.01)
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8 * STEPS_PER_EPOCH, 4, generator=generator)
    y = torch.randint(0, 3, (8 * STEPS_PER_EPOCH,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)


class Probe(pl.Callback):
    """What the optimizer uses at each update, and the weights after it."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}
        self.momenta: dict[int, list[float]] = {}
        self.trainable: dict[int, list[bool]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.start: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module):
        self.start = copy.deepcopy(pl_module.net.state_dict())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        step = trainer.global_step
        groups = optimizer.param_groups
        self.lrs[step] = [group["lr"] for group in groups]
        self.momenta[step] = [
            group["momentum"] if "momentum" in group else group["betas"][0] for group in groups
        ]
        self.trainable[step] = [all(p.requires_grad for p in group["params"]) for group in groups]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights[trainer.global_step - 1] = copy.deepcopy(pl_module.net.state_dict())


def fit(module, callbacks, *, max_epochs=3, ckpt_path=None, root=None, **trainer_options):
    trainer_options.setdefault("enable_checkpointing", False)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=callbacks,
        **trainer_options,
    )
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lr_and_momentum_of_every_group_at_every_step_are_cadence_s(optimizer, tmp_path):
    schedule = one_cycle(0.1, total_steps=TOTAL)
    momentum = schedule.momentum()
    probe = Probe()
    cadence = CadenceCallback({"lr": schedule, "momentum": momentum})
    fit(Tiny(optimizer=optimizer), [cadence, probe], root=tmp_path)
    assert sorted(probe.lrs) == list(range(TOTAL))
    for step in range(TOTAL):
        assert probe.lrs[step] == pytest.approx([0.5 * schedule(step), schedule(step)], rel=1e-12)
        assert probe.momenta[step] == pytest.approx([momentum(step)] * 2, rel=1e-12)
    assert cadence.state.total_steps == TOTAL  # from trainer.estimated_stepping_batches


def test_with_gradient_accumulation_the_values_follow_the_updates(tmp_path):
    total = TOTAL // 2  # two batches per update
    schedule = one_cycle(0.1, total_steps=total)
    probe = Probe()
    cadence = CadenceCallback({"lr": schedule}, [SnapshotEnsemble(at_steps=[5])], submodule="net")
    fit(Tiny(), [cadence, probe], root=tmp_path, accumulate_grad_batches=2)
    assert cadence.state.total_steps == total
    assert cadence.state.steps_per_epoch == STEPS_PER_EPOCH // 2
    assert [probe.lrs[step][1] for step in range(total)] == pytest.approx([schedule(s) for s in range(total)])
    saved = torch.load(tmp_path / "snapshots" / "snapshot-1.pt", weights_only=True)
    assert all(torch.equal(saved[name], value) for name, value in probe.weights[5].items())


def test_resume_from_a_lightning_checkpoint_continues_exactly(tmp_path):
    schedule = one_cycle(0.1, total_steps=TOTAL)

    def callbacks():
        return [SWA(start=10), EMA(decay=0.9)]

    straight_probe = Probe()
    straight = Tiny()
    straight_cadence = CadenceCallback({"lr": schedule, "momentum": schedule.momentum()}, callbacks())
    fit(straight, [straight_cadence, straight_probe], root=tmp_path / "straight")

    first_probe = Probe()
    first = CadenceCallback({"lr": schedule, "momentum": schedule.momentum()}, callbacks(), total_steps=TOTAL)
    trainer = fit(Tiny(), [first, first_probe], max_epochs=1, root=tmp_path / "resumed")
    checkpoint = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(checkpoint)

    resumed_probe = Probe()
    resumed = CadenceCallback({"lr": schedule, "momentum": schedule.momentum()}, callbacks())
    module = Tiny(seed=5)  # different initial weights: everything comes from the checkpoint
    fit(module, [resumed, resumed_probe], ckpt_path=str(checkpoint), root=tmp_path / "resumed")

    assert sorted(first_probe.lrs) == list(range(STEPS_PER_EPOCH))
    assert sorted(resumed_probe.lrs) == list(range(STEPS_PER_EPOCH, TOTAL))
    assert {**first_probe.lrs, **resumed_probe.lrs} == straight_probe.lrs
    assert {**first_probe.momenta, **resumed_probe.momenta} == straight_probe.momenta
    for name, value in straight.net.state_dict().items():
        assert torch.equal(module.net.state_dict()[name], value), name  # bitwise
    for done, again in zip(straight_cadence.bridge.callbacks, resumed.bridge.callbacks):
        assert again.num_averaged == done.num_averaged
        for name, value in done.averaged.state_dict().items():
            assert torch.equal(again.averaged.state_dict()[name], value), name


@pytest.mark.filterwarnings("ignore:.*(resuming from a checkpoint that ended|callbacks used to create).*")
def test_a_mid_epoch_resume_continues_the_lr_sequence_exactly(tmp_path):
    # The values are a function of trainer.global_step, which Lightning restores exactly. (Which batches
    # follow is Lightning's: a plain DataLoader restarts the epoch, so only end-of-epoch checkpoints or a
    # resumable loader give bitwise parameters, as in the test above.)
    schedule = one_cycle(0.1, total_steps=TOTAL)
    straight = Probe()
    fit(Tiny(), [CadenceCallback({"lr": schedule}), straight], root=tmp_path / "a")
    saving = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=4, save_top_k=-1)
    fit(Tiny(), [CadenceCallback({"lr": schedule}), saving], root=tmp_path / "b", enable_checkpointing=True)
    (checkpoint,) = [path for path in (tmp_path / "ck").iterdir() if "step=12" in path.name]
    resumed = Probe()
    fit(
        Tiny(seed=5),
        [CadenceCallback({"lr": schedule}), resumed],
        ckpt_path=str(checkpoint),
        root=tmp_path / "b",
    )
    assert sorted(resumed.lrs) == list(range(12, TOTAL))
    assert resumed.lrs == {step: straight.lrs[step] for step in range(12, TOTAL)}


def test_snapshots_are_saved_at_the_cycle_ends_and_load_as_an_ensemble(tmp_path):
    schedule = snapshot_cosine(0.1, total_steps=TOTAL, num_snapshots=3)
    probe = Probe()
    cadence = CadenceCallback({"lr": schedule}, [SnapshotEnsemble(schedule=schedule)], submodule="net")
    fit(Tiny(), [cadence, probe], root=tmp_path)
    ends = schedule.cycle_ends(TOTAL)
    assert ends == [7, 15, 23]
    files = sorted(path.name for path in (tmp_path / "snapshots").glob("snapshot-*.pt"))
    assert files == ["snapshot-1.pt", "snapshot-2.pt", "snapshot-3.pt"]
    for k, step in enumerate(ends, start=1):
        saved = torch.load(tmp_path / "snapshots" / f"snapshot-{k}.pt", weights_only=True)
        assert all(torch.equal(saved[name], value) for name, value in probe.weights[step].items())
    assert json.loads((tmp_path / "snapshots" / "snapshots.json").read_text())["steps"] == ends
    ensemble = Ensemble(sorted((tmp_path / "snapshots").glob("snapshot-*.pt")), model_factory=make_net)
    assert len(ensemble.members) == 3
    x = torch.randn(5, 4)
    member = make_net()
    member.load_state_dict(probe.weights[15])
    assert torch.allclose(ensemble.member_outputs(x)[1], member(x))


def test_swa_and_ema_equal_the_plain_loop_helpers(tmp_path):
    probe = Probe()
    swa, ema = SWA(start=10, update_every=3), EMA(decay=0.8)
    cadence = CadenceCallback({"lr": 0.05}, [swa, ema], submodule="net")
    fit(Tiny(), [cadence, probe], root=tmp_path)
    # The plain helpers fed the same trajectory (the weights after every update).
    replay = make_net()
    plain_swa, plain_ema = SWAWeights(replay, start_step=10, update_every=3), EMAWeights(replay, decay=0.8)
    for step in range(TOTAL):
        replay.load_state_dict(probe.weights[step])
        plain_swa.update(replay, step)
        plain_ema.update(replay, step)
    assert swa.num_averaged == plain_swa.num_averaged == 5  # steps 10, 13, 16, 19, 22
    assert ema.num_averaged == plain_ema.num_averaged == TOTAL
    for callback, plain in ((swa, plain_swa), (ema, plain_ema)):
        for name, value in plain.module.state_dict().items():
            assert torch.equal(callback.average.module.state_dict()[name], value), name
    saved = torch.load(tmp_path / "swa_model.pt", weights_only=True)
    assert all(torch.equal(saved[name], value) for name, value in plain_swa.module.state_dict().items())


def test_freezeout_freezes_the_right_groups_at_the_right_steps(tmp_path):
    probe = Probe()
    freezeout = FreezeOut(t0=0.5, cubic=False)
    cadence = CadenceCallback({"lr": 0.1}, [freezeout], submodule="net")
    fit(Tiny(freezeout=True), [cadence, probe], root=tmp_path)
    times = freezeout_times(3, 0.5, cubic=False)
    assert freezeout.freeze_steps(TOTAL) == [12, 18, 24]
    for step in range(TOTAL):
        frozen = [step / TOTAL >= t for t in times]
        assert probe.trainable[step] == [not f for f in frozen], step
        expected = [0.1 * freezeout_factor(t, TOTAL)(step) for t in times]
        assert probe.lrs[step] == pytest.approx(expected, abs=1e-15), step
    # A frozen group no longer moves: group 0 (the first Linear) is the same from step 12 on.
    assert torch.equal(probe.weights[11]["0.weight"], probe.weights[23]["0.weight"])
    assert not torch.equal(probe.weights[11]["4.weight"], probe.weights[23]["4.weight"])


def test_gradual_unfreezing_trains_the_stages_groups(tmp_path):
    probe = Probe()
    stages = [{"at_step": 0, "groups": 1}, {"at_epoch": 1, "groups": 2}, {"at": 2 / 3, "groups": "all"}]
    unfreezing = GradualUnfreezing(stages, train_bn=False)
    cadence = CadenceCallback({"lr": 0.1}, [unfreezing], submodule="net")
    fit(Tiny(freezeout=True), [cadence, probe], root=tmp_path)
    for step in range(TOTAL):
        trainable = 1 if step < 8 else 2 if step < 16 else 3
        assert probe.trainable[step] == [i >= 3 - trainable for i in range(3)], step
        assert probe.lrs[step] == [0.1 if i >= 3 - trainable else 0.0 for i in range(3)], step


def test_auto_lr_is_the_race_s_choice_on_copies_of_the_module(tmp_path):
    schedule = one_cycle("auto", total_steps=TOTAL)
    options = {"sweep_options": {"num_steps": 20}, "candidates": 3}
    probe = Probe()
    module = Tiny()
    initial = copy.deepcopy(module.net.state_dict())
    cadence = CadenceCallback({"lr": schedule}, loss_fn=F.cross_entropy, selection_options=options)
    fit(module, [cadence, probe], root=tmp_path)
    value = cadence.selection.value
    # The same selection made directly, on a fresh module and optimizer.
    reference = Tiny()
    expected = select_lr(
        reference, reference.configure_optimizers(), F.cross_entropy, loader(), {"lr": schedule},
        total_steps=TOTAL, **options,
    )  # fmt: skip
    assert value == expected.value
    assert math.isfinite(value)
    assert value > 0
    chosen = schedule.with_lr(value)
    assert [probe.lrs[step][1] for step in range(TOTAL)] == pytest.approx([chosen(s) for s in range(TOTAL)])
    assert json.loads((tmp_path / "lr_selection.json").read_text())["value"] == pytest.approx(value)
    # The race trained copies: training started from the module's own initial weights.
    assert all(torch.equal(probe.start[name], tensor) for name, tensor in initial.items())


class Mixed(Tiny):
    """Mixup in the training step, as docs/mixup.md shows."""

    mixup = Mixup(alpha=0.4, num_classes=3)

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[int, int], torch.Tensor] = {}

    def training_step(self, batch, batch_idx):
        x, y = self.mixup.mix(*batch, seed=0, step=self.global_step, batch_index=batch_idx)
        self.seen[(self.global_step, batch_idx)] = x
        return soft_cross_entropy(self(x), y)


def test_mixup_in_the_training_step_is_a_function_of_the_step(tmp_path):
    module = Mixed()
    fit(module, [CadenceCallback({"lr": 0.05})], max_epochs=2, root=tmp_path)
    batches = list(loader())
    for (step, batch_index), x in module.seen.items():
        expected, _ = Mixup(alpha=0.4, num_classes=3).mix(
            *batches[batch_index], seed=0, step=step, batch_index=batch_index
        )
        assert torch.equal(x, expected)
    assert len(module.seen) == 2 * STEPS_PER_EPOCH
    assert not torch.equal(module.seen[(0, 0)], batches[0][0])  # mixed, not the raw batch


def test_what_lightning_cannot_run_is_refused_with_the_way_out():
    with pytest.raises(ConfigError, match=r"mixup.mix\(x, y"):
        CadenceCallback({"lr": 0.1}, [Mixup(alpha=0.2)])
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        CadenceCallback({"learning_rate": 0.1})
