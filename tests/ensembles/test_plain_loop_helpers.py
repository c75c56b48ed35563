"""The plain-loop helpers: SWAWeights / EMAWeights and SnapshotSaver in a hand-written loop."""

import torch
from torch import nn

from cadence.averaging import EMAWeights, SWAWeights, averaging_due
from cadence.ensembles import Ensemble, SnapshotSaver, snapshot_steps
from cadence.schedules import snapshot_cosine


def _train(steps, helpers, seed=0):
    """Twelve-line loop: SGD on a linear regression, the helpers called after every update."""
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3), torch.randn(32, 2)
    visited = []
    for step in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        visited.append([p.detach().clone() for p in model.parameters()])
        for helper in helpers:
            helper(model, step)
    return model, visited


def test_swa_weights_are_the_mean_of_the_weights_after_the_due_updates():
    holder = {}

    def make_and_update(model, step):
        holder.setdefault("swa", SWAWeights(model, start_step=4, update_every=3)).update(model, step)

    _, visited = _train(16, [make_and_update])
    due = [step for step in range(16) if averaging_due(step, 4, 3)]
    assert due == [4, 7, 10, 13]
    swa = holder["swa"]
    assert swa.num_averaged == 4
    for index, param in enumerate(swa.module.parameters()):
        expected = torch.stack([visited[step][index] for step in due]).mean(0)
        assert torch.allclose(param, expected, atol=1e-6)


def test_ema_weights_follow_the_warmup_recursion():
    holder = {}

    def make_and_update(model, step):
        holder.setdefault("ema", EMAWeights(model, decay=0.9)).update(model, step)

    _, visited = _train(10, [make_and_update])
    expected = [tensor.clone() for tensor in visited[0]]
    for n in range(1, 10):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = [decay * e + (1 - decay) * v for e, v in zip(expected, visited[n])]
    for param, value in zip(holder["ema"].module.parameters(), expected):
        assert torch.allclose(param, value, atol=1e-6)
    state = holder["ema"].state_dict()
    fresh = EMAWeights(nn.Linear(3, 2), decay=0.9)
    fresh.load_state_dict(state)
    assert fresh.num_averaged == 10
    pairs = zip(fresh.module.parameters(), holder["ema"].module.parameters())
    assert all(torch.equal(a, b) for a, b in pairs)


def test_snapshot_saver_writes_the_cycle_ends_and_loads_them_as_an_ensemble(tmp_path):
    schedule = snapshot_cosine(0.1, total_steps=12, num_snapshots=3)
    steps = snapshot_steps(schedule, 12)
    assert steps == [3, 7, 11]
    saver = SnapshotSaver(tmp_path / "snapshots", steps)
    _, visited = _train(12, [saver.save_if_due])
    assert saver.taken == [3, 7, 11]
    assert [path.name for path in saver.paths] == ["snapshot-1.pt", "snapshot-2.pt", "snapshot-3.pt"]
    for k, step in enumerate(steps, start=1):
        saved = torch.load(tmp_path / "snapshots" / f"snapshot-{k}.pt", weights_only=True)
        assert torch.equal(saved["weight"], visited[step][0])
    ensemble = saver.ensemble(lambda: nn.Linear(3, 2), combine="mean_logit")
    assert isinstance(ensemble, Ensemble)
    inputs = torch.randn(5, 3)
    expected = torch.stack([visited[step][0] for step in steps]).mean(0)
    bias = torch.stack([visited[step][1] for step in steps]).mean(0)
    assert torch.allclose(ensemble(inputs), inputs @ expected.T + bias, atol=1e-6)
    assert snapshot_steps(schedule, 12, num_snapshots=2) == [7, 11]
