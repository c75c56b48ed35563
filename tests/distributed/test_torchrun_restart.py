"""``torchrun --max-restarts 1``: a rank dies, torchrun restarts every rank, and ``fit()`` (``resume="auto"``)
continues from the newest checkpoint to the parameters of a run that was never interrupted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

PROGRAM = """
import os
import sys
from pathlib import Path

import torch
from torch import nn

from cadence import distributed
from cadence.data import TensorLoader
from cadence.train.callback import Callback
from cadence.train.trainer import Trainer

out, kill = Path(sys.argv[1]), sys.argv[2] == "kill"


class Die(Callback):
    def on_step_end(self, state):
        if kill and state.step == 5 and state.rank == 1 and not distributed.restarted_by_torchrun():
            os._exit(3)  # a crash after 5 updates, between the checkpoints of steps 4 and 6


generator = torch.Generator().manual_seed(0)
inputs = torch.randn(64, 6, generator=generator)
targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
torch.manual_seed(1)
model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
trainer = Trainer(
    model,
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    nn.functional.cross_entropy,
    TensorLoader(inputs, targets, 8, seed=3),
    total_steps=10,
    callbacks=[Die()],
    progress=False,
    run_dir=out / "run",
    checkpoint_every_steps=2,
    checkpoint_every_epochs=None,
    log_every_n_steps=3,
    timeout_s=60,
)
state = trainer.fit()  # resume="auto"
if state.rank == 0:
    torch.save(
        {
            "parameters": [p.detach().clone() for p in model.parameters()],
            "resumed_from": None if trainer.resumed_from is None else trainer.resumed_from.name,
            "restarts": os.environ.get("TORCHELASTIC_RESTART_COUNT"),
            "step": state.step,
        },
        out / "result.pt",
    )
"""


def torchrun(program: Path, out: Path, mode: str) -> subprocess.CompletedProcess:
    out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["--max-restarts", "1", "--monitor-interval", "0.2", str(program), str(out), mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)


def test_a_restart_resumes_from_the_newest_checkpoint_and_ends_where_an_uninterrupted_run_does(tmp_path):
    program = tmp_path / "train_program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    straight = torchrun(program, tmp_path / "straight", "run")
    assert straight.returncode == 0, straight.stderr[-3000:]
    restarted = torchrun(program, tmp_path / "restarted", "kill")
    if restarted.returncode != 0 and "Signal 6 (SIGABRT)" in restarted.stderr:
        # Seen once in four loaded full-suite runs (never in 11 runs of this test alone or two at a time): a
        # restarted gloo rank aborting in C++ ("terminate called without an active exception") before it
        # trains. One more launch from scratch; any other failure, or a second abort, fails the test.
        shutil.rmtree(tmp_path / "restarted")
        restarted = torchrun(program, tmp_path / "restarted", "kill")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    expected = torch.load(tmp_path / "straight" / "result.pt")
    result = torch.load(tmp_path / "restarted" / "result.pt")
    assert expected["restarts"] == "0"
    assert expected["resumed_from"] is None
    assert result["restarts"] == "1"  # the second attempt wrote the result
    assert result["resumed_from"] == "step-00000004.pt"  # the newest checkpoint before the crash
    assert result["step"] == expected["step"] == 10
    for mine, theirs in zip(result["parameters"], expected["parameters"], strict=True):
        assert torch.equal(mine, theirs)


def test_a_restart_across_machines_with_the_shared_store_warns_and_names_the_fix(monkeypatch):
    from datetime import timedelta

    from cadence.distributed import environment

    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # two machines
    with pytest.warns(RuntimeWarning, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"):
        assert environment._attempt_store(timedelta(seconds=5)) is None
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")  # a first attempt: torch's env:// as usual
    assert environment._attempt_store(timedelta(seconds=5)) is None
