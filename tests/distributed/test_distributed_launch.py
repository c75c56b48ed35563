"""launch_local starts N ranks like torchrun; ``cadence train --nproc 2`` runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cadence.distributed import launch_local, strip_nproc
from cadence.errors import ConfigError
from cadence.schedules import one_cycle

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

RANK_PROGRAM = """
import os
import sys
import time
from pathlib import Path

from cadence import distributed

assert distributed.init_from_env()  # gloo on CPU, from the environment launch_local set
rank = distributed.get_rank()
Path(sys.argv[1], f"rank{rank}.json").write_text(
    '{"rank": %d, "world_size": %d, "local_rank": %d, "mean": %r}'
    % (rank, distributed.get_world_size(), distributed.get_local_rank(),
       distributed.all_reduce_mean({"value": float(rank)})["value"])
)
distributed.barrier()
if rank == 1:
    # os._exit: no interpreter teardown, where gloo's destructors can abort (SIGABRT, exit 134) under load
    os._exit(int(sys.argv[2]))
time.sleep(600)  # rank 0 hangs: the launcher must stop it once rank 1 has failed
"""


def test_launch_local_sets_the_torchrun_environment_and_propagates_exit_codes(tmp_path):
    (tmp_path / "rank_program.py").write_text(textwrap.dedent(RANK_PROGRAM))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    # rank 1 exits with 3; rank 0 hangs until the launcher stops it
    assert launch_local(2, [str(tmp_path), "3"], module="rank_program", env=env) == 3
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert records == [
        {"rank": 0, "world_size": 2, "local_rank": 0, "mean": 0.5},
        {"rank": 1, "world_size": 2, "local_rank": 1, "mean": 0.5},
    ]


def test_launch_local_rejects_a_bad_process_count():
    with pytest.raises(ConfigError, match="--nproc=0"):
        launch_local(0, ["train"])


def test_strip_nproc():
    assert strip_nproc(["train", "a.toml", "--nproc", "2", "--set", "x=1", "--nproc=4"]) == [
        "train",
        "a.toml",
        "--set",
        "x=1",
    ]


CONFIG = """
[data]
name = "synthetic"
num_train = 256
num_test = 64

[model]
name = "mlp"

[optimizer]
name = "sgd"
momentum = 0.9

[schedule]
name = "one_cycle"
max_lr = 0.05

[train]
epochs = 2
batch_size = 16
seed = 0

[distributed]
lr_scaling = "linear"
base_batch_size = 16
warmup_steps = 4
"""


def test_cadence_train_nproc_2_end_to_end(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "run"
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK")}
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "train", str(config), "--nproc", "2", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the LR scaling plan is printed once (by rank 0)
    assert result.stdout.count("lr scaling: linear, global batch 32 = 16 per device × 2 processes") == 1
    assert "max_lr 0.05 -> 0.1; warmup 4 steps (given)" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    meta = json.loads((run_dir / "meta.json").read_text())
    assert summary["status"] == "completed"
    assert meta["world_size"] == 2
    # 256 examples / (16 per rank × 2 ranks) = 8 steps per epoch, 2 epochs
    assert summary["steps"] == meta["total_steps"] == 16
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [record for record in records if record["kind"] == "train"]
    assert [record["step"] for record in train] == list(range(1, 17))  # written once, by rank 0 only
    assert sum(record["kind"] == "eval" for record in records) == 2
    # the LR followed the plan: global batch 32 = 2 × base 16 -> factor 2, warmup over 4 steps from 1×
    base = one_cycle(0.05, total_steps=16)
    multipliers = [1.0, 1.25, 1.5, 1.75] + [2.0] * 12
    assert [record["lr"] for record in train] == pytest.approx(
        [multiplier * base(step) for step, multiplier in enumerate(multipliers)], rel=1e-9
    )


def test_cadence_train_nproc_reports_a_bad_config_before_starting_processes(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.replace('lr_scaling = "linear"', 'lr_scaling = "cubic"'))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cadence",
            "train",
            str(config),
            "--nproc",
            "2",
            "--run-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "lr_scaling" in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path(tmp_path / "r").exists()


SLEEPER = """
import os
import sys
import time
from pathlib import Path

Path(sys.argv[1], f"pid{os.environ['RANK']}").write_text(str(os.getpid()))
time.sleep(600)  # a rank that trains on unless someone stops it
"""

LAUNCHER = """
import sys
from cadence.distributed import launch_local
sys.exit(launch_local(2, [sys.argv[1]], module="sleeper"))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_to_the_launcher_stops_its_ranks(tmp_path, signal_name):
    import signal
    import time

    (tmp_path / "sleeper.py").write_text(textwrap.dedent(SLEEPER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"pid{rank}").exists() for rank in range(2)):
            assert time.monotonic() < deadline, "the ranks did not start"
            assert launcher.poll() is None
            time.sleep(0.05)
        time.sleep(0.2)  # the pid files are written: let the writes finish
        pids = [int((tmp_path / f"pid{rank}").read_text()) for rank in range(2)]
        assert all(_alive(pid) for pid in pids)
        number = getattr(signal, signal_name)
        launcher.send_signal(number)
        assert launcher.wait(timeout=10) == 128 + number
        assert not any(_alive(pid) for pid in pids)  # reaped by the launcher: gone, not orphaned
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
