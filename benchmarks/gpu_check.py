"""One GPU, a few minutes: throughput, MFU, peak memory, host syncs, and the Trainer against a plain loop.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu      # on a CUDA machine (about 3-4 minutes)
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu-smoke       # CPU, seconds: numbers mean nothing

Two workloads on synthetic data that lives on the device (``TensorLoader(device=...)``), so the input
pipeline is not measured:

- ``resnet20``: ``cadence.models.create("resnet-small", blocks=(3, 3, 3))`` (ResNet-20, 0.27 M parameters) on
  32×32×3 images, batch 512;
- ``transformer``: a 6-layer pre-norm causal decoder (d = 512, 8 heads, MLP 2048, vocabulary 8192) on
  sequences of 256 tokens, batch 32, next-token cross-entropy.

Each in fp32, bf16, fp16 (GradScaler), bf16 + channels_last (ResNet only) and bf16 + ``torch.compile``. For
every configuration two runs of the same length on a fresh model with the same seed:

- ``plain``: a hand-written loop (autocast, GradScaler for fp16, ``zero_grad(set_to_none=True)``, the same
  one-cycle LR and momentum written with ``cadence.hyperparams.set_hyperparams``), never reading the loss;
- ``trainer``: ``cadence.train.trainer.Trainer`` with the same schedules (no run directory, no evaluation, no
  progress bar), which reads the loss every ``log_every_n_steps`` (10).

Reported: samples/s (tokens/s for the transformer) from the steady-state steps (after ``--warmup`` steps;
the device is synchronised only at the two ends), the Trainer/plain step-time ratio, MFU = model FLOPs per
step (``torch.utils.flop_counter`` on one forward + backward) / step time / the GPU's dense bf16 peak, the
peak allocated memory of the Trainer run, and, on CUDA, the synchronising CUDA calls per step in the
Trainer run (``torch.cuda.set_sync_debug_mode("warn")``, counted over the steady-state steps).

Results: OUT/results.json and OUT/results.md (printed too). ``--budget-s`` stops starting new
configurations once that many seconds have passed, so the run fits a short lease on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cadence import models
from cadence.data import TensorLoader
from cadence.hyperparams import set_hyperparams
from cadence.schedules import one_cycle, one_cycle_momentum
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

#: Dense bf16 tensor-core peak, TFLOP/s, by a substring of ``torch.cuda.get_device_name()`` (vendor sheets).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class CausalDecoder(nn.Module):
    """A small GPT-style decoder: token + position embeddings, pre-norm blocks, a tied-free output layer."""

    def __init__(self, vocab: int, length: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Parameter(torch.zeros(length, width))
        block = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, vocab, bias=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.tokens(tokens) + self.positions[: tokens.shape[1]]
        hidden = self.blocks(hidden, mask=self.mask[: tokens.shape[1], : tokens.shape[1]], is_causal=True)
        return self.output(self.norm(hidden))


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


@dataclass
class Workload:
    name: str
    build: object  # () -> nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    batch_size: int
    loss_fn: object
    items_per_sample: int  # tokens per sequence for the transformer, 1 for images
    unit: str
    image: bool


def workloads(device: torch.device, smoke: bool) -> list[Workload]:
    generator = torch.Generator().manual_seed(0)
    image_batch, seq_batch, length, vocab = (4, 2, 8, 32) if smoke else (512, 32, 256, 8192)
    width, layers, heads = (16, 1, 2) if smoke else (512, 6, 8)
    side, blocks, channels = (8, (1, 1, 1), 4) if smoke else (32, (3, 3, 3), 16)
    images = torch.randn(image_batch * 4, 3, side, side, generator=generator)
    labels = torch.randint(0, 10, (image_batch * 4,), generator=generator)
    sequences = torch.randint(0, vocab, (seq_batch * 4, length + 1), generator=generator)
    return [
        Workload(
            "resnet20",
            lambda: models.create(
                "resnet-small", num_classes=10, in_channels=3, width=channels, blocks=blocks
            ),
            images.to(device),
            labels.to(device),
            image_batch,
            F.cross_entropy,
            1,
            "images/s",
            True,
        ),
        Workload(
            "transformer",
            lambda: CausalDecoder(vocab, length, width, layers, heads),
            sequences[:, :-1].contiguous().to(device),
            sequences[:, 1:].contiguous().to(device),
            seq_batch,
            token_loss,
            length,
            "tokens/s",
            False,
        ),
    ]


@dataclass(frozen=True)
class Setting:
    precision: str
    channels_last: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        return (
            self.precision
            + (" + channels_last" if self.channels_last else "")
            + (" + compile" if self.compile else "")
        )


def settings_for(workload: Workload, device: torch.device, smoke: bool) -> list[Setting]:
    settings = [Setting("fp32"), Setting("bf16")]
    if device.type == "cuda":
        settings.append(Setting("fp16"))  # fp16 autocast on a CPU is slow and not what anyone trains with
    if workload.image:
        settings.append(Setting("bf16", channels_last=True))
    if not smoke:  # compiling takes tens of seconds on a CPU; the smoke run checks everything else
        settings.append(Setting("bf16", compile=True))
    return settings


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh(
    workload: Workload, setting: Setting, device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = workload.build().to(device)
    if setting.channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, **fused)
    return model, optimizer


def schedules(steps: int) -> dict:
    return {"lr": one_cycle(0.1, total_steps=steps), "momentum": one_cycle_momentum(total_steps=steps)}


def plain_loop(workload: Workload, setting: Setting, device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per steady-state step of the hand-written loop."""
    model, optimizer = fresh(workload, setting, device)
    step_fn = torch.compile(model) if setting.compile else model
    dtype = AUTOCAST[setting.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=setting.precision == "fp16")
    plan = schedules(steps)
    batches = len(workload.inputs) // workload.batch_size
    started = 0.0
    for step in range(steps):
        if step == warmup:
            synchronize(device)
            started = time.perf_counter()
        set_hyperparams(optimizer, step, lr=plan["lr"], momentum=plan["momentum"])
        index = (step % batches) * workload.batch_size
        inputs = workload.inputs[index : index + workload.batch_size]
        targets = workload.targets[index : index + workload.batch_size]
        if setting.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = workload.loss_fn(step_fn(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize(device)
    return (time.perf_counter() - started) / (steps - warmup)


class Stopwatch(Callback):
    """Synchronises the device at the end of step ``warmup`` and of the last step, and notes the time;
    on CUDA it counts the synchronising calls in between (``set_sync_debug_mode("warn")``)."""

    def __init__(self, device: torch.device, warmup: int, steps: int) -> None:
        self.device, self.warmup, self.steps = device, warmup, steps
        self.started = self.ended = 0.0
        self.syncs: int | None = None
        self._record: warnings.catch_warnings | None = None
        self._caught: list = []

    def on_step_end(self, state) -> None:
        if state.step == self.warmup:
            synchronize(self.device)
            self.started = time.perf_counter()
            if self.device.type == "cuda":
                self._record = warnings.catch_warnings(record=True)
                self._caught = self._record.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
        elif state.step == self.steps:
            if self._record is not None:
                torch.cuda.set_sync_debug_mode("default")
                self.syncs = sum("synchroniz" in str(item.message) for item in self._caught)
                self._record.__exit__(None, None, None)
            synchronize(self.device)
            self.ended = time.perf_counter()


def trainer_run(workload: Workload, setting: Setting, device: torch.device, steps: int, warmup: int) -> dict:
    model, optimizer = fresh(workload, setting, device)
    loader = TensorLoader(workload.inputs, workload.targets, workload.batch_size, seed=0, device=device)
    watch = Stopwatch(device, warmup, steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    Trainer(
        model,
        optimizer,
        workload.loss_fn,
        loader,
        total_steps=steps,
        schedules=schedules(steps),
        callbacks=[watch],
        precision=setting.precision,
        device=device,
        channels_last=setting.channels_last,
        compile=setting.compile,
        progress=False,
        checkpoint_every_epochs=None,
        eval_every_epochs=None,
    ).fit()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    syncs = None if watch.syncs is None else watch.syncs / (steps - warmup)
    return {
        "seconds_per_step": (watch.ended - watch.started) / (steps - warmup),
        "peak_mib": peak,
        "syncs": syncs,
    }


def flops_per_step(workload: Workload, device: torch.device) -> float:
    """Model FLOPs of one forward + backward on one batch (fp32, uncompiled), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    model = workload.build().to(device)
    inputs, targets = workload.inputs[: workload.batch_size], workload.targets[: workload.batch_size]
    with FlopCounterMode(display=False) as counter:
        workload.loss_fn(model(inputs), targets).backward()
    return float(counter.get_total_flops())


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def markdown(record: dict) -> str:
    lines = [
        "# GPU check: throughput, MFU, peak memory, host syncs, Trainer vs a plain loop",
        "",
        f"- date: {record['date']}; device: {record['device_name']}; torch {record['torch']}; "
        f"Python {record['python']}",
        f"- command: `{record['command']}`",
        f"- {record['steps']} steps per run, timed after {record['warmup']} (includes compile warm-up); "
        "MFU against the dense bf16 peak "
        + (f"{record['peak_tflops']:.0f} TFLOP/s" if record["peak_tflops"] else "(unknown: not computed)"),
        "",
        "| workload | setting | plain loop (per s) | Trainer (per s) | Trainer / plain step time "
        "| MFU (Trainer) | peak memory (MiB) | syncs per step (Trainer) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in record["rows"]:
        if "error" in row:
            lines.append(f"| {row['workload']} | {row['setting']} | failed: {row['error']} | | | | | |")
            continue
        mfu = "—" if row["mfu"] is None else f"{100 * row['mfu']:.1f} %"
        peak = "—" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        syncs = "—" if row["syncs"] is None else f"{row['syncs']:.2f}"
        lines.append(
            f"| {row['workload']} | {row['setting']} | {row['plain_rate']:,.0f} {row['unit']} "
            f"| {row['trainer_rate']:,.0f} | {row['ratio']:.3f} | {mfu} | {peak} | {syncs} |"
        )
    if record["skipped"]:
        lines += ["", f"Not run (time budget): {', '.join(record['skipped'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for results.json and results.md")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--smoke", action="store_true", help="tiny models, 6 steps, CPU, no compile")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.steps, args.warmup = "cpu", 6, 2
    if not 0 < args.warmup < args.steps:
        parser.error(
            f"--warmup must be between 1 and --steps - 1, got {args.warmup} with --steps {args.steps}"
        )
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    began = time.perf_counter()
    record: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "CPU",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "steps": args.steps,
        "warmup": args.warmup,
        "peak_tflops": peak_tflops(device),
        "rows": [],
        "skipped": [],
    }
    for workload in workloads(device, args.smoke):
        flops = flops_per_step(workload, device)
        for setting in settings_for(workload, device, args.smoke):
            label = f"{workload.name} {setting.label}"
            if time.perf_counter() - began > args.budget_s:
                record["skipped"].append(label)
                continue
            row: dict = {
                "workload": workload.name,
                "setting": setting.label,
                "unit": workload.unit,
                **asdict(setting),
            }
            try:
                plain = plain_loop(workload, setting, device, args.steps, args.warmup)
                trained = trainer_run(workload, setting, device, args.steps, args.warmup)
            except Exception as error:  # one failing setting (e.g. compile) must not lose the others
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
                record["rows"].append(row)
                print(f"{label}: failed: {row['error']}", flush=True)
                continue
            samples = workload.batch_size * workload.items_per_sample
            seconds = trained["seconds_per_step"]
            peak = record["peak_tflops"]
            row.update(
                plain_seconds_per_step=plain,
                trainer_seconds_per_step=seconds,
                plain_rate=samples / plain,
                trainer_rate=samples / seconds,
                ratio=seconds / plain,
                flops_per_step=flops,
                mfu=None if peak is None else flops / seconds / (peak * 1e12),
                peak_mib=trained["peak_mib"],
                syncs=trained["syncs"],
            )
            record["rows"].append(row)
            print(f"{label}: plain {plain * 1e3:.2f} ms, Trainer {seconds * 1e3:.2f} ms per step", flush=True)
    record["wall_s"] = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    report = markdown(record)
    (args.out / "results.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
