import re
import runpy
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plain_loop.py"


@pytest.mark.slow
def test_plain_loop_example_learns(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.strip().splitlines()
    accuracies = [float(re.search(r"test accuracy ([0-9.]+)", line).group(1)) for line in lines]
    assert len(accuracies) == 8
    assert accuracies[-1] > 0.6  # from 10% (chance) in 8 epochs of one-cycle
    assert lines[-1].startswith("epoch 8: lr 0.0000")  # the cycle ends at max_lr / (25 * 1e4)
