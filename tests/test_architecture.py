"""The arrows between cadence's parts (docs/architecture.md), checked on the source.

Every ``import`` statement counts, also the ones inside functions (a lazy import is still an arrow). The only
exceptions are the named back-compatibility re-exports, which import the new home of a moved name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cadence"

#: Parts that know nothing of the Trainer, its callbacks, the config, the CLI or the run records.
TECHNIQUES = (
    "schedules",
    "hyperparams",
    "freezing",
    "param_groups",
    "regularization",
    "precision",
    "ensembles",
    "averaging",
    "weights",
    "optimizers",
    "data",
    "models",
    "errors",
)
UPPER = ("train", "callbacks", "config", "cli", "tracking", "lr_finder", "fine_tune")

#: part -> the parts it must never import
NEVER: dict[str, tuple[str, ...]] = {
    **{part: UPPER for part in TECHNIQUES},
    "distributed": ("train", "callbacks", "config", "cli", "tracking", "lr_finder"),
    "train": ("callbacks", "config", "cli"),
    "callbacks": ("config", "cli"),
    "integrations": ("config", "cli"),
    # The run records sit below the loop: the config layer and the CLI hand them what they need to know.
    "tracking": ("train", "callbacks", "config", "cli", "lr_finder", "fine_tune", "integrations"),
}

#: (file, imported part): re-exports kept where a name used to live, importing its new home.
SHIMS = {
    ("distributed/record.py", "callbacks"),  # RecordLRScaling moved to cadence.callbacks.lr_scaling
    ("distributed/__init__.py", "callbacks"),  # cadence.distributed.RecordLRScaling, resolved lazily
}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cadence" else None


def imported_parts(path: Path) -> set[str]:
    """The cadence parts (``schedules``, ``train``, ...) that ``path`` imports anywhere."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(part for alias in node.names if (part := _part(alias.name)))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "cadence":  # from cadence import distributed, __version__, ...
                found.update(alias.name for alias in node.names if (PACKAGE / alias.name).is_dir())
            elif part := _part(node.module):
                found.add(part)
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        part = relative.split("/")[0].removesuffix(".py")
        for imported in sorted(imported_parts(path) & set(NEVER.get(part, ()))):
            if (relative, imported) not in SHIMS:
                problems.append(f"cadence/{relative} imports cadence.{imported}")
    return problems


def test_no_arrow_runs_backwards():
    assert violations() == []


def test_the_checker_sees_a_backwards_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from cadence.train.trainer import Trainer\n    from cadence import config\n"
    )
    assert imported_parts(bad) == {"train", "config"}


@pytest.mark.parametrize(
    "code",
    [
        "from cadence import __version__",
        "import cadence.cli.main",
        "import cadence.errors",
    ],
)
def test_light_imports_do_not_load_torch(code):
    # A fresh interpreter: what `cadence --help` and `--version` pay before answering.
    check = f"import sys; {code}; loaded = [m for m in ('torch', 'numpy') if m in sys.modules]; print(loaded)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_lazy_package_exports_every_public_name():
    import cadence

    assert sorted(cadence.__all__) == sorted(["__version__", *cadence._EXPORTS])
    for name in cadence.__all__:
        assert getattr(cadence, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        cadence.nonexistent  # noqa: B018


def test_only_the_pipeline_writes_a_param_groups_lr():
    import re

    writes = re.compile(r"""group\w*\[["']lr["']\]\s*=[^=]""")
    writers = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if writes.search(path.read_text())
    )
    assert writers == ["hyperparams.py"]
