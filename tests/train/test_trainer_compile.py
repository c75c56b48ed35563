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

from cadence.callbacks.freezeout import FreezeOut
from cadence.callbacks.unfreezing import GradualUnfreezing
from cadence.config import apply_overrides, build_experiment, parse_config, validate_config
from cadence.errors import ConfigError
from cadence.freezing import freezeout_param_groups
from cadence.train import Callback, Trainer
from cadence.train.compiling import apply_backend_settings, check_compile, compile_arguments
from cadence.train.state import TrainState
from cadence.transfer.freezing import combine_freezing_
from cadence.transfer.param_groups import discriminative_lrs, layer_groups

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


@pytest.fixture
def backend_switches():
    switches = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = switches
    torch.backends.cudnn.benchmark = benchmark


def test_the_switches_are_set_for_a_cuda_device(backend_switches):
    # The flags can be set without a GPU: this checks what a CUDA run sets, not that CUDA uses it.
    record = apply_backend_settings(torch.device("cuda"), tf32=True, cudnn_benchmark=True)
    assert record == {"tf32": True, "cudnn_benchmark": True, "applied": True}
    assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark
    assert torch.get_float32_matmul_precision() == "high"
    apply_backend_settings(torch.device("cuda", 0), tf32=False, cudnn_benchmark=False)
    assert not torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32
    assert not torch.backends.cudnn.benchmark
    assert torch.get_float32_matmul_precision() == "highest"


def test_the_switches_are_recorded_and_change_nothing_on_cpu(tmp_path, backend_switches):
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
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
    after = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    assert after == before


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


# -- freezing without a recompile per stage ------------------------------------------------------------------


def freezeout_run(compile, steps: int = 24):
    model = deep_model()
    optimizer = torch.optim.SGD(freezeout_param_groups(model, n_groups=GROUPS), lr=0.1, momentum=0.9)
    log = ParameterLog()
    freezeout = FreezeOut(t0=0.3, cubic=False, n_groups=GROUPS)
    data = batches()
    trainer = Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        data,
        total_steps=steps,
        schedules={"lr": 0.1},
        eval_data=data,
        callbacks=[log, freezeout],
        compile=compile,
        progress=False,
    )
    state = trainer.fit()
    return model, log, freezeout.freeze_steps(steps), state


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:training stalled")
def test_freezeout_compiled_recompiles_a_bounded_number_of_times(fresh_dynamo):
    model, log, freeze_steps, state = freezeout_run({"backend": "aot_eager"})
    assert len(set(freeze_steps[:-1])) == GROUPS - 1  # 8 freezing stages during the run
    assert max(freeze_steps[:-1]) < state.total_steps
    # the training graph and the evaluation graph; freezing by requires_grad compiles one more per stage
    # and hits Dynamo's recompile limit (8) here
    assert graphs(fresh_dynamo) <= 2
    assert not fresh_dynamo["unimplemented"]
    assert all(log.requires_grad)  # compiled: frozen layers keep requires_grad
    groups = layer_groups(model, n_groups=GROUPS)
    positions = {id(p): i for i, p in enumerate(model.parameters())}
    for group, step in zip(groups[:-1], freeze_steps[:-1]):
        for param in group.params:
            index = positions[id(param)]
            trained = log.history[step][index]  # after the updates of steps 0 .. step - 1
            assert not torch.equal(log.history[step - 1][index], trained)  # it trained until then
            for later in log.history[step + 1 :]:  # no update from step `step` (0-based) on
                assert torch.equal(later[index], trained)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:training stalled")
def test_freezeout_compiled_trains_like_freezeout_eager(fresh_dynamo):
    eager, eager_log, _, eager_state = freezeout_run(False)
    compiled, _, _, compiled_state = freezeout_run({"backend": "aot_eager"})
    assert not all(eager_log.requires_grad)  # eager: requires_grad=False, backward skips frozen layers
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert compiled_state.metrics["val_loss"] == pytest.approx(eager_state.metrics["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_gradual_unfreezing_compiled_does_not_recompile_per_stage(fresh_dynamo):
    model = deep_model()
    groups = layer_groups(model, n_groups=GROUPS)
    optimizer = torch.optim.AdamW(discriminative_lrs(groups, factor=1.0), lr=0.01, weight_decay=0.1)
    stages = [{"at_step": 0, "groups": 1}] + [{"at_step": 2 * k, "groups": k + 1} for k in range(1, GROUPS)]
    log = ParameterLog()
    trainer = Trainer(
        model,
        optimizer,
        nn.functional.cross_entropy,
        batches(),
        total_steps=2 * GROUPS,
        schedules={"lr": 0.01},
        callbacks=[log, GradualUnfreezing(stages, groups=groups)],
        compile={"backend": "aot_eager"},
        progress=False,
    )
    trainer.fit()
    assert graphs(fresh_dynamo) == 1  # nine stages, one graph
    positions = {id(p): i for i, p in enumerate(model.parameters())}
    for index, group in enumerate(groups):
        starts = GROUPS - 1 - index  # the stage in which this group starts to train
        for param in group.params:
            position = positions[id(param)]
            # frozen until step 2 * starts: no update, weight decay included
            assert all(
                torch.equal(log.history[s][position], log.history[0][position]) for s in range(2 * starts + 1)
            )
            assert not torch.equal(log.history[-1][position], log.history[0][position])


def test_combine_freezing_without_requires_grad_keeps_the_graph_and_returns_the_frozen():
    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    for param in first.parameters():
        param.grad = torch.ones_like(param)
    frozen = combine_freezing_({"FreezeOut": ([first, second], [(first, False)])}, by_requires_grad=False)
    assert {id(p) for p in frozen} == {id(p) for p in first.parameters()}
    assert all(p.requires_grad for p in [*first.parameters(), *second.parameters()])
    assert all(p.grad is None for p in first.parameters())
    frozen = combine_freezing_({"FreezeOut": ([first, second], [(first, False)])})
    flags = [p.requires_grad for p in [*first.parameters(), *second.parameters()]]
    assert flags == [False, False, True, True]
    assert len(frozen) == 2
