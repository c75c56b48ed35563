"""RunDir: the paths of the run directory layout and its readers."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cadence.tracking import MissingRunFileError, RunDir, write_json


def _write_run(path: Path) -> None:
    path.mkdir()
    write_json(path / "meta.json", {"status": "running", "seed": 3})
    write_json(path / "summary.json", {"status": "completed", "steps": 4})
    (path / "config.toml").write_text("[train]\nsteps = 4\n")
    records = [{"kind": "train", "step": 1, "loss": 0.5}, {"kind": "eval", "step": 1, "val_loss": 0.7}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "checkpoints").mkdir()
    for step in (2, 10):
        (path / "checkpoints" / f"step-{step:08d}.pt").write_bytes(b"")


def test_readers_return_what_was_written(tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.exists()
    assert run.is_run()
    assert run.meta() == {"status": "running", "seed": 3}
    assert run.summary() == {"status": "completed", "steps": 4}
    assert run.status == "completed"
    assert run.config() == {"train": {"steps": 4}}
    assert [r["kind"] for r in run.metrics()] == ["train", "eval"]
    assert run.metrics("eval") == [{"kind": "eval", "step": 1, "val_loss": 0.7}]
    assert [p.name for p in run.checkpoints()] == ["step-00000002.pt", "step-00000010.pt"]
    assert run.latest_checkpoint() == tmp_path / "run" / "checkpoints" / "step-00000010.pt"


def test_paths_follow_the_layout(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    assert run.path == tmp_path
    assert run.meta_path == tmp_path / "meta.json"
    assert run.metrics_path == tmp_path / "metrics.jsonl"
    assert run.lr_selection_path == tmp_path / "lr_selection.json"
    assert run.checkpoints_dir == tmp_path / "checkpoints"
    assert run.status is None
    assert not run.is_run()


def test_missing_file_names_run_and_file(tmp_path: Path) -> None:
    with pytest.raises(MissingRunFileError, match=r"has no summary\.json") as caught:
        RunDir(tmp_path).summary()
    assert str(tmp_path) in str(caught.value)


def test_new_layout_paths_and_readers(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.swa_model_path == tmp_path / "swa_model.pt"
    assert run.ema_model_path == tmp_path / "ema_model.pt"
    assert run.averaged_model_paths() == {"swa": run.swa_model_path, "ema": run.ema_model_path}
    assert run.lr_selection_plot_path == tmp_path / "lr_selection.png"
    assert run.legacy_lr_finder_path == tmp_path / "lr_finder.json"
    assert run.csv_path("train") == tmp_path / "train.csv"
    assert run.csv_path("eval") == tmp_path / "eval.csv"
    with pytest.raises(ValueError, match="kind"):
        run.csv_path("test")
    assert run.tensorboard_dir == tmp_path / "tensorboard"
    assert run.snapshot_index_path == tmp_path / "snapshots" / "snapshots.json"
    assert run.snapshots() == []
    run.snapshots_dir.mkdir()
    for k in (10, 2, 1):
        run.snapshot_path(k).write_bytes(b"")
    (run.snapshots_dir / "snapshot-x.pt").write_bytes(b"")
    assert [path.name for path in run.snapshots()] == ["snapshot-1.pt", "snapshot-2.pt", "snapshot-10.pt"]
    assert run.relative(run.snapshot_path(2)) == "snapshots/snapshot-2.pt"
    with pytest.raises(MissingRunFileError, match=r"has no lr_selection\.json"):
        run.lr_selection()
    with pytest.raises(MissingRunFileError, match=r"has no snapshots\.json"):
        run.snapshot_index()
    write_json(run.lr_selection_path, {"value": 0.3})
    write_json(run.snapshot_index_path, {"count": 3})
    assert run.lr_selection() == {"value": 0.3}
    assert run.snapshot_index() == {"count": 3}


# --- one spelling of the layout -------------------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[2] / "cadence"

#: The names only ``cadence/tracking/run_dir.py`` may spell as a path.
LAYOUT_NAMES = (
    RunDir.META,
    RunDir.SUMMARY,
    RunDir.METRICS,
    RunDir.CONFIG,
    RunDir.LR_SELECTION,
    RunDir.LR_SELECTION_PLOT,
    RunDir.LEGACY_LR_FINDER,
    RunDir.TRAIN_CSV,
    RunDir.EVAL_CSV,
    RunDir.SNAPSHOT_INDEX,
    RunDir.SWA_MODEL,
    RunDir.EMA_MODEL,
    RunDir.SNAPSHOTS,
    RunDir.CHECKPOINTS,
    "snapshot-",
)

#: (file, name): spellings that must stay, with the reason.
ALLOWED = {
    # A technique (usable in a plain loop) may not import the run records; RunDir.snapshot_path agrees
    # with it (test_snapshot_saver_uses_the_layout_names).
    ("ensembles.py", "snapshot-"),
    # The checkpoint file names are their own part of the layout, which RunDir uses.
    ("tracking/checkpoint_files.py", RunDir.CHECKPOINTS),
    # A config key (``[train] csv = true``), not the file.
    ("config/fingerprint.py", RunDir.TRAIN_CSV),
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _spells(value: str, name: str) -> bool:
    """Whether a string constant is (part of) a path naming ``name``; prose (with spaces) is not a path."""
    if any(character.isspace() for character in value):
        return False
    if name.endswith("-"):
        return any(part.startswith(name) for part in value.split("/"))
    return name in value.split("/")


def layout_spellings() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "tracking/run_dir.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
                continue
            for name in LAYOUT_NAMES:
                if _spells(node.value, name) and (relative, name) not in ALLOWED:
                    problems.append(f"cadence/{relative}:{node.lineno} spells {node.value!r}; use RunDir")
    return problems


def test_only_run_dir_spells_the_layout() -> None:
    assert layout_spellings() == []


def test_the_check_sees_a_spelled_name(tmp_path: Path) -> None:
    assert _spells("summary.json", RunDir.SUMMARY)
    assert _spells("snapshots/snapshot-3.pt", "snapshot-")
    assert not _spells("has no summary.json here", RunDir.SUMMARY)
    assert not _spells("summary.jsonl", RunDir.SUMMARY)


def test_snapshot_saver_uses_the_layout_names(tmp_path: Path) -> None:
    from cadence.ensembles import SnapshotSaver

    run = RunDir(tmp_path)
    assert SnapshotSaver(run.snapshots_dir, [0, 5]).path(2) == run.snapshot_path(2)
