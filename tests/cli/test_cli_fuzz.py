"""Property-based fuzzing of every subcommand's arguments and of config files: exit code 0 or 2, no traceback.

The commands run in-process through :func:`cadence.cli.main.main`. Nothing trains: the step after the
checks is replaced (``run_config`` and ``build_experiment`` by the build-free :func:`check_config`, the
demo's LR range test by a stop, compare's training processes by a fake that writes a finished run), so
every example takes milliseconds and the whole file a few seconds. ``CADENCE_FUZZ_EXAMPLES=500`` runs more
examples, with a fresh random seed.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cadence.cli import compare_cmd, demo_cmd  # noqa: E402
from cadence.cli.main import main  # noqa: E402
from cadence.config.check import check_config  # noqa: E402
from cadence.errors import ConfigError  # noqa: E402
from cadence.tracking.toml_writer import dumps  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("CADENCE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize="CADENCE_FUZZ_EXAMPLES" not in os.environ,
)
GOOD_CONFIG = """
[data]
name = "synthetic"
num_train = 32
num_test = 16
input_shape = [4]

[model]
name = "mlp"

[schedule]
name = "one_cycle"
max_lr = 0.1

[train]
epochs = 1
"""


class _Finished:
    def poll(self) -> int:
        return 0


def _fake_run(job: compare_cmd.RunJob, threads: int) -> _Finished:
    """A finished run directory in the documented format, written instantly."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / "meta.json").write_text(json.dumps({"seed": job.seed, "status": "completed"}))
    evals = {"kind": "eval", "step": 10, "time": 1.0, "val_loss": 0.5, "val_accuracy": 0.8 + job.seed / 100}
    (job.run_dir / "metrics.jsonl").write_text(json.dumps(evals) + "\n")
    summary = {"status": "completed", "steps": 10, "wall_time": 1.0, "final": {"val_accuracy": 0.8}}
    (job.run_dir / "summary.json").write_text(json.dumps(summary))
    return _Finished()


def _stop(*_args: Any, **_kwargs: Any) -> Any:
    raise ConfigError("stopped before training (fuzz)")


def _check_only(config: Any, *_args: Any, **_kwargs: Any) -> None:
    check_config(config)


def _check_then_stop(config: Any, *_args: Any, **_kwargs: Any) -> None:
    check_config(config)
    raise ConfigError("stopped before building (fuzz)")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "good.toml").write_text(GOOD_CONFIG)
    (root / "empty.toml").write_text("")
    (root / "broken.toml").write_text("[data\nname = ")
    (root / "a-file.txt").write_text("text\n")
    (root / "a-dir").mkdir()
    run = root / "run"
    (run / "snapshots").mkdir(parents=True)
    (run / "config.toml").write_text(GOOD_CONFIG)
    (run / "snapshots" / "snapshot-0.pt").write_bytes(b"not a checkpoint")
    return root


@pytest.fixture
def nothing_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    import cadence.config as config_package

    monkeypatch.setattr(config_package, "run_config", _check_only)
    monkeypatch.setattr(config_package, "build_experiment", _check_then_stop)
    monkeypatch.setattr(demo_cmd, "choose_demo_lr", _stop)
    monkeypatch.setattr(compare_cmd, "_launch", _fake_run)


def _paths(root: Path) -> st.SearchStrategy[str]:
    names = [
        "good.toml",
        "empty.toml",
        "broken.toml",
        "a-file.txt",
        "a-dir",
        "run",
        "missing.toml",
        "new/dir",
    ]
    return st.sampled_from([str(root / name) for name in names])


_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "._=-:/ ", max_size=12)
_NUMBERS = st.one_of(
    st.integers(-3, 5).map(str), st.sampled_from(["0", "1e9", "nan", "inf", "-1", "0.5", "1.5", "x", ""])
)
_SET_VALUES = st.one_of(
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(
            [
                "train.epochs",
                "train.device",
                "train.batch_size",
                "data.name",
                "model.name",
                "optimizer.name",
                "optimizer.lr",
                "schedule.name",
                "schedule.max_lr",
                "callbacks.swa.start",
                "distributed.lr_scaling",
                "bogus.key",
                "train",
                "max_lr",
                "total_steps",
                "mode",
                "momentum.base_momentum",
            ]
        ),
        st.one_of(_NUMBERS, _TEXT, st.sampled_from(["true", "[1, 2]", '"cpu"', "tpu9", "cuda", "auto"])),
    ),
    _TEXT,
)


def _options(root: Path, spec: dict[str, st.SearchStrategy[str] | None]) -> st.SearchStrategy[list[str]]:
    """A list of ``--option [value]`` tokens drawn from ``spec`` (None: a flag) plus unknown options."""
    spec = {**spec, "--bogus": None, "--bogus-value": _TEXT}
    names = sorted(spec)

    def tokens(name: str) -> st.SearchStrategy[list[str]]:
        value = spec[name]
        return st.just([name]) if value is None else value.map(lambda text: [name, text])

    pairs = st.lists(st.sampled_from(names).flatmap(tokens), max_size=5)
    return pairs.map(lambda groups: [token for group in groups for token in group])


def _assert_clean(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out, argv
    assert code in (0, 2), (argv, code, captured.err[-500:])
    if code == 2 and captured.err:
        assert "error" in captured.err.splitlines()[-1], (argv, captured.err)


def _subcommand_argv(root: Path) -> dict[str, st.SearchStrategy[list[str]]]:
    paths = _paths(root)
    outs = st.sampled_from([str(root / "out"), str(root / "a-file.txt"), str(root / "a-file.txt" / "x")])
    positional = st.lists(st.one_of(paths, _TEXT), max_size=2)
    sets = _SET_VALUES
    return {
        "demo": _options(
            root,
            {"--out": outs, "--seeds": _NUMBERS, "--steps": _NUMBERS, "--jobs": _NUMBERS, "--quick": None},
        ).map(lambda rest: ["demo", "--no-plots", *rest]),
        "train": st.tuples(
            positional,
            _options(root, {"--set": sets, "--run-dir": outs, "--resume": None, "--nproc": _NUMBERS}),
        ).map(lambda parts: ["train", *parts[0], *parts[1]]),
        "find-lr": st.tuples(
            positional,
            _options(
                root,
                {
                    "--set": sets,
                    "--output": outs,
                    "--repeats": _NUMBERS,
                    "--num-steps": _NUMBERS,
                    "--start-lr": _NUMBERS,
                    "--end-lr": _NUMBERS,
                    "--mode": st.sampled_from(["exp", "linear", "log"]),
                    "--method": st.sampled_from(["valley", "steep"]),
                },
            ),
        ).map(lambda parts: ["find-lr", *parts[0], *parts[1]]),
        "schedule": st.tuples(
            st.lists(st.sampled_from(["one_cycle", "cyclic", "cosine", "warmup_cosine", "nope"]), max_size=1),
            _options(
                root,
                {
                    "--set": sets,
                    "--config": paths,
                    "--steps": st.integers(-2, 2000).map(str),
                    "--steps-per-epoch": _NUMBERS,
                },
            ),
        ).map(lambda parts: ["schedule", *parts[0], *parts[1], "--no-plot"]),
        "compare": st.tuples(
            positional,
            _options(
                root,
                {
                    "--set": sets,
                    "--seeds": st.sampled_from(["0", "1", "2", "-1", "x"]),
                    "--target": st.one_of(
                        _TEXT, st.sampled_from(["val_accuracy=0.7", "val_acc=0.9", "val_loss=x"])
                    ),
                    "--jobs": st.sampled_from(["0", "1", "2", "x"]),
                    "--out": outs,
                    "--runs": paths,
                },
            ),
        ).map(lambda parts: ["compare", *parts[0], *parts[1], "--no-plots"]),
        "ensemble": st.tuples(
            st.lists(paths, max_size=1),
            _options(
                root,
                {
                    "--k": _NUMBERS,
                    "--combine": st.sampled_from(["mean_prob", "vote", "median"]),
                    "--val-fraction": _NUMBERS,
                    "--device": st.sampled_from(["cpu", "cuda", "tpu9", "cuda:7", "", "mps"]),
                    "--data": _TEXT,
                },
            ),
        ).map(lambda parts: ["ensemble", *parts[0], *parts[1]]),
    }


@pytest.mark.parametrize("command", ["demo", "train", "find-lr", "schedule", "compare", "ensemble"])
def test_fuzzed_arguments_exit_0_or_2_without_traceback(command, workspace, nothing_trains, capsys) -> None:
    strategy = _subcommand_argv(workspace)[command]

    @FUZZ
    @given(strategy)
    def check(argv: list[str]) -> None:
        _assert_clean(argv, capsys)

    check()


_SECTION_KEYS = {
    "data": ["name", "subset", "num_train", "augment", "drop_last", "on_device", "normalize", "input_shape"],
    "model": ["name", "hidden_sizes", "num_classes", "width"],
    "optimizer": ["name", "lr", "momentum", "weight_decay", "betas", "nesterov"],
    "schedule": [
        "name",
        "max_lr",
        "total_steps",
        "total_epochs",
        "base_lr",
        "step_size_up",
        "lr",
        "momentum",
    ],
    "train": ["epochs", "total_steps", "batch_size", "seed", "device", "precision", "grad_clip", "progress"],
    "callbacks": ["swa", "ema", "mixup", "snapshot_ensemble", "early_stopping", "nonsense"],
    "distributed": ["lr_scaling", "base_batch_size", "warmup_steps"],
    "extra": ["anything"],
}
_NAMES = ["synthetic", "mnist1d", "mlp", "cnn1d", "sgd", "adam", "one_cycle", "cyclic", "constant", "nope"]
_SCALARS = st.one_of(
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.sampled_from([*_NAMES, "auto", "cpu", "tpu9", "bf16", "off", ""]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["name", "max_lr", "start", "enabled", "total_steps", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=6,
)


@st.composite
def _configs(draw: st.DrawFn) -> str:
    sections = draw(st.lists(st.sampled_from(sorted(_SECTION_KEYS)), max_size=6, unique=True))
    config: dict[str, Any] = {}
    for section in sections:
        keys = draw(st.lists(st.sampled_from(_SECTION_KEYS[section]), max_size=4, unique=True))
        config[section] = {key: draw(_VALUES) for key in keys}
    if draw(st.booleans()):  # most configs start from a good one, so the deeper checks are reached too
        base = {
            "data": {"name": "synthetic", "num_train": 32, "num_test": 16},
            "model": {"name": "mlp"},
            "train": {"epochs": 1},
        }
        for section, table in config.items():
            base.setdefault(section, {}).update(table)
        config = base
    try:
        text = dumps(config)
    except (TypeError, ValueError):
        text = repr(config)
    if draw(st.integers(0, 9)) == 0:  # sometimes not TOML at all
        text += draw(st.text(max_size=20))
    return text


@pytest.mark.parametrize("command", ["train", "find-lr", "schedule", "compare"])
def test_fuzzed_config_files_exit_0_or_2_without_traceback(
    command, workspace, nothing_trains, capsys, tmp_path_factory
) -> None:
    folder = tmp_path_factory.mktemp(f"configs-{command}")

    @FUZZ
    @given(_configs())
    def check(text: str) -> None:
        path = folder / "fuzzed.toml"
        path.write_text(text, encoding="utf-8")
        argv = {
            "train": ["train", str(path), "--run-dir", str(folder / "run")],
            "find-lr": ["find-lr", str(path), "--output", str(folder / "lr")],
            "schedule": ["schedule", "--config", str(path), "--steps-per-epoch", "10", "--steps", "200"],
            "compare": ["compare", str(path), "--seeds", "1", "--out", str(folder / "cmp"), "--no-plots"],
        }[command]
        _assert_clean(argv, capsys)

    check()
