"""Training throughput (samples/s) of the MNIST-1D CNN with 1 and 2 data-parallel processes on the CPU.

    python benchmarks/distributed_throughput.py [--steps 60] [--repeats 3] [--out FILE.json]

Settings, each measured ``--repeats`` times (interleaved, so a burst of load from other programs does not
hit one setting only):

- ``1 process x 1 thread``, ``1 process x 2 threads``: a plain loop, no DDP;
- ``2 processes x 1 thread``: DDP over gloo, launched like ``cadence train --nproc 2`` (one process per core).

Two batch regimes: the same *per-process* batch (128; the global batch doubles with 2 processes, as when
scaling out) and the same *global* batch (256 = 1 x 256 or 2 x 128). Throughput counts global samples per
second of optimizer steps after ``--warmup`` untimed steps. Data:
``mnist1d.data.make_dataset(get_dataset_args())`` (4000 training examples of length 40),
model ``cadence.models.create("cnn1d")``, SGD with momentum.
The 1-minute load average is recorded before each measurement: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    return torch.as_tensor(data["x"], dtype=torch.float32), torch.as_tensor(data["y"], dtype=torch.long)


def measure(rank: int, world_size: int, threads: int, batch: int, steps: int, warmup: int) -> float:
    """Run ``warmup + steps`` optimizer steps; return global samples per second of the timed steps."""
    from cadence import distributed
    from cadence.data import TensorLoader
    from cadence.models import create

    torch.set_num_threads(threads)
    inputs, targets = load_data()
    torch.manual_seed(0)
    model = distributed.wrap_model(create("cnn1d", num_classes=10, input_shape=(40,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = TensorLoader(inputs, targets, batch, seed=0, rank=rank, world_size=world_size, drop_last=True)
    batches = []
    while len(batches) < warmup + steps:
        batches.extend(loader.batches(len(batches) // len(loader)))
    start = 0.0
    for index, (x, y) in enumerate(batches[: warmup + steps]):
        if index == warmup:
            distributed.barrier()
            start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    return steps * batch * world_size / elapsed


def _rank_entry(rank: int, world_size: int, port: int, result_path: str, arguments: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from cadence import distributed

    distributed.init_from_env("gloo")
    value = measure(rank, world_size, *arguments)
    if rank == 0:
        Path(result_path).write_text(json.dumps(value))
    distributed.barrier()
    torch.distributed.destroy_process_group()


def run_setting(processes: int, threads: int, batch: int, steps: int, warmup: int) -> float:
    if processes == 1:
        return measure(0, 1, threads, batch, steps, warmup)
    from cadence.distributed import find_free_port

    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "result.json")
        mp.start_processes(
            _rank_entry,
            args=(processes, find_free_port(), path, (threads, batch, steps, warmup)),
            nprocs=processes,
            start_method="spawn",
        )
        return float(json.loads(Path(path).read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/distributed_raw.json")
    args = parser.parse_args()

    settings = [
        # (label, processes, threads per process, batch per process)
        ("same per-process batch 128", "1 process x 1 thread", 1, 1, 128),
        ("same per-process batch 128", "1 process x 2 threads", 1, 2, 128),
        ("same per-process batch 128", "2 processes x 1 thread (DDP, gloo)", 2, 1, 128),
        ("same global batch 256", "1 process x 1 thread", 1, 1, 256),
        ("same global batch 256", "1 process x 2 threads", 1, 2, 256),
        ("same global batch 256", "2 processes x 1 thread (DDP, gloo)", 2, 1, 128),
    ]
    results: dict[tuple[str, str], list[float]] = {(regime, name): [] for regime, name, *_ in settings}
    loads: list[float] = []
    for repeat in range(args.repeats):
        for regime, name, processes, threads, batch in settings:
            loads.append(os.getloadavg()[0])
            value = run_setting(processes, threads, batch, args.steps, args.warmup)
            results[(regime, name)].append(value)
            print(f"repeat {repeat}: {regime:<28} {name:<36} {value:9.0f} samples/s", flush=True)

    lines = [
        f"| regime | setting | samples/s (mean ± std over {args.repeats}) | vs 1 process x 1 thread |",
        "|---|---|---|---|",
    ]
    for regime, name, *_ in settings:
        values = results[(regime, name)]
        baseline = statistics.mean(results[(regime, "1 process x 1 thread")])
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(
            f"| {regime} | {name} | {statistics.mean(values):.0f} ± {spread:.0f} | "
            f"{statistics.mean(values) / baseline:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()}-core CPU, no GPU; {platform.platform()}",
        "torch": torch.__version__,
        "command": "python " + " ".join(sys.argv),
        "steps": args.steps,
        "warmup": args.warmup,
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "results": {f"{regime} | {name}": values for (regime, name), values in results.items()},
        "table": table,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
