"""Host reads per training step: none between two log points, one at each (fp32, bf16, fp16, with label
smoothing, mixup and EMA).

On CPU every tensor method that hands a value to Python (``item``, ``bool``, ``float``, ``int``, ``tolist``,
``cpu``, ``numpy``) is counted while the Trainer runs; on a CUDA device ``torch.cuda.set_sync_debug_mode``
turns every synchronisation of the steps between log points into an error.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from trainer_helpers import as_list, make_data, make_model

from cadence.callbacks.averaging import EMA
from cadence.callbacks.mixup import Mixup
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

READ_METHODS = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy")
EVERY = 4
STEPS = 12


class CountReads(Callback):
    """Counts host reads of tensors per step: ``reads[step]`` for the steps 1..total (after the update)."""

    def __init__(self) -> None:
        self.count = 0
        self.reads: dict[int, int] = {}
        self._at_start = 0

    @contextlib.contextmanager
    def patched(self):
        originals = {name: getattr(torch.Tensor, name) for name in READ_METHODS}

        def counting(original):
            def method(tensor, *args, **kwargs):
                self.count += 1
                return original(tensor, *args, **kwargs)

            return method

        try:
            for name, original in originals.items():
                setattr(torch.Tensor, name, counting(original))
            yield self
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)

    def on_batch_start(self, state) -> None:
        if state.batch_index % state.accumulation_steps == 0:  # the first micro-batch of a step
            self._at_start = self.count

    def on_step_end(self, state) -> None:
        self.reads[state.step] = self.count - self._at_start


def expected_reads(every: int = EVERY, steps: int = STEPS) -> dict[int, int]:
    return {step: int(step % every == 0 or step == steps) for step in range(1, steps + 1)}


def train(precision: str, *, smoothing: float = 0.0, callbacks=(), fused: bool = False, device="cpu"):
    inputs, targets = make_data(samples=48)
    model = make_model(seed=1)
    options = {"fused": True} if fused else {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, **options)
    counter = CountReads()
    trainer = Trainer(
        model,
        optimizer,
        F.cross_entropy,
        as_list(inputs, targets, 8),
        epochs=2,
        precision=precision,
        label_smoothing=smoothing,
        num_classes=3,
        callbacks=[*callbacks, counter],
        progress=False,
        log_every_n_steps=EVERY,
        device=device,
        grad_clip=1.0,
    )
    with counter.patched():
        state = trainer.fit()
    return counter.reads, state


CASES = {
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "fp16-fused-sgd": {"precision": "fp16", "fused": True},
    "label-smoothing": {"precision": "fp32", "smoothing": 0.1},
    "mixup": {"precision": "fp32", "callbacks": lambda: [Mixup(alpha=0.4, num_classes=3)]},
    "ema": {"precision": "fp32", "callbacks": lambda: [EMA(decay=0.9)]},
    "bf16-smoothing-mixup-ema": {
        "precision": "bf16",
        "smoothing": 0.1,
        "callbacks": lambda: [Mixup(alpha=0.4, num_classes=3), EMA(decay=0.9)],
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_host_read_between_log_points(case):
    options = dict(CASES[case])
    factory = options.pop("callbacks", None)
    reads, state = train(callbacks=factory() if factory else (), **options)
    assert state.step == STEPS
    assert reads == expected_reads()  # 0 between log points, the one batched read at each


def test_the_counter_sees_a_per_step_read():
    # The counter must be able to fail: the pre-update read of log_every_n_steps=1 is one read per step.
    class ReadLoss(Callback):
        def on_after_backward(self, state) -> None:
            state.loss.item()

    reads, _ = train("fp32", callbacks=[ReadLoss()])
    assert reads == {step: value + 1 for step, value in expected_reads().items()}


def test_fp16_without_a_fused_optimizer_reads_once_per_step_in_the_scaler():
    # GradScaler.step reads its inf flag before a plain optimizer's step: the documented remaining read.
    reads, _ = train("fp16")
    assert reads == {step: value + 1 for step, value in expected_reads().items()}


def test_fp16_skipped_steps_are_counted_at_the_reads():
    # A loss scale of 2**100 overflows fp16 gradients: the scaler skips steps (and halves the scale) until
    # the scale is small enough; the skipped count must match what the scaler did.
    inputs, targets = make_data(samples=48)
    model = make_model(seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, fused=True)
    trainer = Trainer(
        model,
        optimizer,
        F.cross_entropy,
        as_list(inputs, targets, 8),
        epochs=2,
        precision="fp16",
        progress=False,
        log_every_n_steps=EVERY,
    )
    trainer.precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    state = trainer.fit()
    halvings = round(100 - torch.log2(torch.tensor(trainer.precision.scale)).item())
    assert state.skipped_steps == halvings > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_no_cuda_synchronisation_between_log_points(precision):
    class NoSync(Callback):
        def on_batch_start(self, state) -> None:
            between = (state.step + 1) % EVERY != 0 and state.step + 1 != state.total_steps
            torch.cuda.set_sync_debug_mode("error" if between else "default")

        def on_step_end(self, state) -> None:
            torch.cuda.set_sync_debug_mode("default")

    try:
        callbacks = [Mixup(alpha=0.4, num_classes=3), EMA(decay=0.9), NoSync()]
        _, state = train(precision, smoothing=0.1, callbacks=callbacks, fused=True, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert state.step == STEPS


def test_ema_without_reads_averages_like_torchs_averaged_model():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    inputs, targets = make_data(samples=48)
    data = as_list(inputs, targets, 8)
    model = torch.nn.Sequential(make_model(seed=2), torch.nn.BatchNorm1d(3))
    ema = EMA(decay=0.9, warmup=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    Trainer(model, optimizer, F.cross_entropy, data, epochs=2, callbacks=[ema], progress=False).fit()
    reference = torch.nn.Sequential(make_model(seed=2), torch.nn.BatchNorm1d(3))
    averaged = AveragedModel(reference, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    for _ in range(2):
        for x, y in data:
            loss = F.cross_entropy(reference(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            averaged.update_parameters(reference)
    assert ema.num_averaged == int(averaged.n_averaged) == 12
    expected = averaged.module.state_dict()
    for name, value in ema.averaged.module.state_dict().items():
        assert torch.equal(value, expected[name]), name
