"""torch.compile and the GPU switches: the compile, tf32 and cudnn_benchmark options, compiled evaluation, and
freezing (FreezeOut, gradual unfreezing) without a recompile per stage.

The compiled runs are tiny. The freezing tests use the ``aot_eager`` backend: Dynamo's guards (and so its
recompiles) and AOTAutograd's forward/backward split are the same as with inductor, without its C++ build.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cadence.config import apply_overrides, build_experiment, parse_config, validate_config
from cadence.errors import ConfigError
from cadence.train import Callback, Trainer
from cadence.train.compiling import check_compile, compile_arguments
from cadence.train.state import TrainState

pytestmark = pytest.mark.usefixtures("one_thread")

GROUPS = 9
CONFIG = """
[data]
name = "synthetic"
num_train = 32
num_test = 16
input_shape = [8]

[model]
name = "mlp"
hidden_sizes = [16]

[optimizer]
name = "sgd"

[schedule]
name = "constant"
value = 0.1

[train]
epochs = 1
batch_size = 16
progress = "off"
device = "cpu"
"""


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield torch._dynamo.utils.counters
    torch._dynamo.reset()


def graphs(counters) -> int:
    return counters["stats"]["unique_graphs"]


def deep_model(seed: int = 0) -> nn.Module:
    """``GROUPS`` layer groups: eight Linear + ReLU blocks and a head."""
    torch.manual_seed(seed)
    blocks = [nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(GROUPS - 1)]
    return nn.Sequential(*blocks, nn.Linear(8, 3))


def batches(count: int = 4, size: int = 8, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of one size (a second shape would make Dynamo compile a dynamic graph)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count * size, 8, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    return [(inputs[i : i + size], targets[i : i + size]) for i in range(0, count * size, size)]


class ParameterLog(Callback):
    """The parameters after every update: ``history[step]`` holds them after ``step`` updates."""

    def __init__(self) -> None:
        self.history: list[list[torch.Tensor]] = []
        self.requires_grad: list[bool] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.history = [[p.detach().clone() for p in state.model.parameters()]]

    def on_step_end(self, state: TrainState) -> None:
        self.history.append([p.detach().clone() for p in state.model.parameters()])
        self.requires_grad.append(all(p.requires_grad for p in state.model.parameters()))


# -- the options ---------------------------------------------------------------------------------------------


def test_compile_arguments_of_each_form():
    assert compile_arguments(False) is None
    assert compile_arguments(True) == {}
    assert compile_arguments({"mode": "max-autotune", "fullgraph": True, "dynamic": False}) == {
        "mode": "max-autotune",
        "fullgraph": True,
        "dynamic": False,
    }
    assert check_compile({"mode": "reduce-overhead"}) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", "expected true, false or a table"),
        (1, "expected true, false or a table"),
        (
            {"mode": "fast"},
            "compile.mode to be one of 'default', 'reduce-overhead', 'max-autotune', got 'fast'",
        ),
        ({"fullgraph": 1}, "compile.fullgraph to be true or false, got 1"),
        ({"dynamic": "auto"}, "compile.dynamic to be true or false, got 'auto'"),
        (
            {"modes": "default"},
            r"unknown key compile.modes \(valid keys: mode, fullgraph, dynamic, backend\)",
        ),
    ],
)
def test_a_bad_compile_value_names_the_field_and_the_allowed_values(value, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(nn.Linear(8, 3), None, nn.functional.cross_entropy, batches(), epochs=1, compile=value)


@pytest.mark.parametrize("name", ["tf32", "cudnn_benchmark"])
def test_the_gpu_switches_must_be_booleans(name):
    with pytest.raises(ConfigError, match=f"{name} must be True or False, got {name}=1"):
        Trainer(nn.Linear(8, 3), None, nn.functional.cross_entropy, batches(), epochs=1, **{name: 1})


def test_a_compile_table_in_a_config_reaches_the_trainer():
    from cadence.config.run import trainer_for

    overrides = ['train.compile.mode="max-autotune"', "train.compile.dynamic=false", "train.tf32=true"]
    config = apply_overrides(parse_config(CONFIG), overrides)
    validate_config(config)
    trainer = trainer_for(build_experiment(config))
    assert trainer.compile == {"mode": "max-autotune", "dynamic": False}
    assert (trainer.tf32, trainer.cudnn_benchmark) == (True, False)


def test_a_bad_compile_table_in_a_config_names_the_field():
    config = apply_overrides(parse_config(CONFIG), ['train.compile.mode="fastest"'])
    with pytest.raises(ConfigError, match=r"train\.compile = .*expected compile\.mode to be one of"):
        validate_config(config)


def test_the_switches_are_recorded_and_change_nothing_on_cpu(tmp_path):
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.benchmark)
    model = nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches(),
        total_steps=1,
        device="cpu",
        tf32=True,
        cudnn_benchmark=True,
        run_dir=tmp_path,
        progress=False,
    )
    trainer.fit()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["backend"] == {"compile": False, "tf32": True, "cudnn_benchmark": True, "applied": False}
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.benchmark) == before


# -- compiled evaluation -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_evaluation_equals_eager_evaluation(fresh_dynamo):
    data = batches()
    results = {}
    for compile in (False, True):
        torch.manual_seed(0)  # the same weights; dropout would change the metrics if it ran in train mode
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = Trainer(
            model, optimizer, nn.functional.cross_entropy, data, epochs=1, compile=compile, progress=False
        )
        results[compile] = trainer.evaluate(data)
        assert model.training  # the mode is restored, through the compiled wrapper too
    assert graphs(fresh_dynamo) == 1  # the compiled evaluation ran the compiled module
    assert results[True].keys() == results[False].keys() == {"val_loss", "val_accuracy"}
    for key, value in results[False].items():
        assert results[True][key] == pytest.approx(value, rel=1e-5, abs=1e-6)
