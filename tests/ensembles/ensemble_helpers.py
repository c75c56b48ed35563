"""A minimal stand-in for the Trainer's loop: enough hooks to drive the ensemble callbacks."""

import torch
from torch import nn

from cadence.hyperparams import HyperparamPipeline
from cadence.train.state import TrainState


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def make_data(count: int = 64, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, 6, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0.5).long()
    return inputs, targets


class Batches:
    """Re-iterable (x, y) batches of one epoch, in a fixed order."""

    def __init__(self, inputs, targets, batch_size=16):
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size

    def __iter__(self):
        for start in range(0, len(self.inputs), self.batch_size):
            yield self.inputs[start : start + self.batch_size], self.targets[start : start + self.batch_size]

    def __len__(self):
        return -(-len(self.inputs) // self.batch_size)


def evaluate(model, data):
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
    model.train()
    return {"val_accuracy": correct / len(data.inputs)}


def run_loop(
    model, callbacks, *, total_steps, schedule=None, run_dir=None, stop_at=None, resume=None, seed=0
):
    """Train ``total_steps`` (or until ``stop_at``); return (state, checkpoint dict)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a shared machine
    try:
        return _run_loop(model, callbacks, total_steps, schedule, run_dir, stop_at, resume, seed)
    finally:
        torch.set_num_threads(threads)


def _run_loop(model, callbacks, total_steps, schedule, run_dir, stop_at, resume, seed):
    data = Batches(*make_data())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = TrainState(
        model=model,
        optimizer=optimizer,
        total_steps=total_steps,
        steps_per_epoch=len(data),
        run_dir=run_dir,
        seed=seed,
        num_classes=3,
        evaluate=evaluate,
        eval_data=data,
        train_data=data,
        # The loop's schedules; callbacks (SWA's LR phase) register on it in on_fit_start.
        pipeline=HyperparamPipeline({"lr": schedule} if schedule is not None else {}),
    )
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        state.step = resume["step"]
        for callback, callback_state in zip(callbacks, resume["callbacks"]):
            callback.load_state_dict(callback_state)
    for callback in callbacks:
        callback.on_fit_start(state)
    batches = [batch for _ in range(total_steps // len(data) + 1) for batch in data]
    while state.step < total_steps and (stop_at is None or state.step < stop_at):
        state.batch = batches[state.step]
        state.batch_index = state.step % len(data)
        state.hyperparams = state.pipeline.apply(optimizer, state.step)
        for callback in callbacks:
            callback.on_batch_start(state)
        x, y = state.batch
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state.step += 1
        for callback in reversed(callbacks):
            callback.on_step_end(state)
    if stop_at is None or state.step >= total_steps:
        for callback in reversed(callbacks):
            callback.on_fit_end(state)
    checkpoint = {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": state.step,
        "callbacks": [callback.state_dict() for callback in callbacks],
    }
    return state, checkpoint


class CyclicStandIn:
    """A cyclic schedule with ``cycle_ends``: cosine cycles of ``cycle_steps`` steps."""

    def __init__(self, cycle_steps, max_lr=0.1):
        self.cycle_steps, self.max_lr = cycle_steps, max_lr

    def __call__(self, step):
        import math

        t = (step % self.cycle_steps) / self.cycle_steps
        return self.max_lr * (1 + math.cos(math.pi * t)) / 2

    def cycle_ends(self, total_steps):
        return [s for s in range(self.cycle_steps - 1, total_steps, self.cycle_steps)]
