"""The arrows between cadence's parts (docs/architecture.md), checked on the source.

Every ``import`` statement counts, also the ones inside functions (a lazy import is still an arrow). The only
exceptions are the named back-compatibility re-exports, which import the new home of a moved name.

A part is a top-level module or subpackage of ``cadence``, except in ``cadence/transfer/``, which holds two
layers: its modules are techniques (part ``transfer``) but the fine-tuning recipe, ``transfer/fine_tune.py``,
is a recipe (part ``transfer.fine_tune``) that may use the loop and the callbacks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
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
    "transfer",
)
#: Modules inside a package that sit at another layer than the package: file -> its part.
RECIPE_FILES = {"transfer/fine_tune.py": "transfer.fine_tune"}
UPPER = ("train", "callbacks", "config", "cli", "tracking", "lr_finder", "transfer.fine_tune")

#: part -> the parts it must never import
NEVER: dict[str, tuple[str, ...]] = {
    **{part: UPPER for part in TECHNIQUES},
    "distributed": ("train", "callbacks", "config", "cli", "tracking", "lr_finder"),
    "train": ("callbacks", "config", "cli"),
    "callbacks": ("config", "cli"),
    "integrations": ("config", "cli"),
    # A recipe runs the loop with callbacks; the config layer and the CLI call it, never the other way.
    "transfer.fine_tune": ("config", "cli", "integrations"),
    # The run records sit below the loop: the config layer and the CLI hand them what they need to know.
    "tracking": ("train", "callbacks", "config", "cli", "lr_finder", "transfer.fine_tune", "integrations"),
}

#: (file, imported part): re-exports kept where a name used to live, importing its new home.
SHIMS = {
    ("distributed/record.py", "callbacks"),  # RecordLRScaling moved to cadence.callbacks.lr_scaling
    ("distributed/__init__.py", "callbacks"),  # cadence.distributed.RecordLRScaling, resolved lazily
    # Transfer learning moved to cadence.transfer; the old modules import their new home and warn.
    ("param_groups.py", "transfer"),
    ("features.py", "transfer"),
    ("fine_tune.py", "transfer.fine_tune"),
    ("models/pretrained.py", "transfer"),
}

#: Old module -> its new home: each is only a re-export that warns (see test_moved_modules_only_re_export).
MOVED_MODULES = {
    "cadence.features": "cadence.transfer.features",
    "cadence.param_groups": "cadence.transfer.param_groups",
    "cadence.fine_tune": "cadence.transfer.fine_tune",
    "cadence.models.pretrained": "cadence.transfer.pretrained",
}


def _part(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "cadence":
        return None
    for file, part in RECIPE_FILES.items():
        if parts[1:] == file.removesuffix(".py").split("/"):
            return part
    return parts[1]


def _file_part(relative: str) -> str:
    return RECIPE_FILES.get(relative, relative.split("/")[0].removesuffix(".py"))


def imported_parts(path: Path) -> set[str]:
    """The cadence parts (``schedules``, ``train``, ...) that ``path`` imports anywhere."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(part for alias in node.names if (part := _part(alias.name)))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "cadence":  # from cadence import distributed, __version__, ...
                found.update(alias.name for alias in node.names if (PACKAGE / alias.name).is_dir())
            elif (part := _part(node.module)) and (
                folder := PACKAGE.joinpath(*node.module.split(".")[1:])
            ).is_dir():
                # from cadence.transfer import fine_tune: each module named is a part (maybe another layer)
                for alias in node.names:
                    is_module = (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir()
                    found.add(_part(f"{node.module}.{alias.name}") if is_module else part)
            elif part := _part(node.module):
                found.add(part)
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        part = _file_part(relative)
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


def test_the_checker_sees_the_transfer_recipe_as_a_recipe(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import cadence.transfer.features\n"
        "from cadence.transfer.fine_tune import fine_tune\n"
        "from cadence.transfer import fine_tune, freezing\n"
    )
    assert imported_parts(bad) == {"transfer", "transfer.fine_tune"}
    assert _file_part("transfer/fine_tune.py") == "transfer.fine_tune"
    assert _file_part("transfer/features.py") == "transfer"
    # the transfer techniques may not use the recipe, the loop or the callbacks; the recipe may
    assert {"train", "callbacks", "transfer.fine_tune"} <= set(NEVER["transfer"])
    assert not {"train", "callbacks"} & set(NEVER["transfer.fine_tune"])


def test_moved_modules_only_re_export_their_new_home():
    for old in MOVED_MODULES:
        path = PACKAGE.joinpath(*old.split(".")[1:]).with_suffix(".py")
        relative = path.relative_to(PACKAGE).as_posix()
        shims = {imported for file, imported in SHIMS if file == relative}
        assert imported_parts(path) - {"errors"} == shims, old


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_moved_modules_still_work_and_warn(old, new):
    # A fresh interpreter, so that the module's body (which warns) runs.
    check = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    import {old} as old\n"
        f"new = importlib.import_module({new!r})\n"
        "assert all(getattr(old, name) is getattr(new, name) for name in new.__all__)\n"
        "assert sorted(old.__all__) == sorted(new.__all__)\n"
        # the warning points at the importing code (here the -c script), not at the import machinery
        "messages = [(str(w.message), w.filename) for w in caught if w.category is DeprecationWarning]\n"
        "print(messages)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == repr([(f"{old} is deprecated: import from {new}", "<string>")])


def test_moved_freezing_helpers_still_work_and_warn():
    import cadence.freezing
    import cadence.transfer.freezing

    for name in cadence.transfer.freezing.__all__:
        with pytest.warns(DeprecationWarning, match=f"cadence.freezing.{name} is deprecated: import from "):
            assert getattr(cadence.freezing, name) is getattr(cadence.transfer.freezing, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from cadence.freezing import apply_freezeout, freezeout_param_groups  # noqa: F401  FreezeOut's own


@pytest.mark.parametrize(
    "module", ["cadence.transfer", "cadence.transfer.features", "cadence.transfer.freezing"]
)
def test_the_transfer_package_does_not_load_the_trainer(module):
    upper = ("cadence.train", "cadence.callbacks", "cadence.transfer.fine_tune")
    check = f"import sys, {module}; print([m for m in {upper!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


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
    import cadence.transfer

    assert sorted(cadence.__all__) == sorted(["__version__", *cadence._EXPORTS])
    for name in cadence.__all__:
        assert getattr(cadence, name) is not None
    # no public name points at a module that only re-exports (and warns)
    assert not set(cadence._EXPORTS.values()) & set(MOVED_MODULES)
    assert sorted(cadence.transfer.__all__) == sorted(cadence.transfer._EXPORTS)
    for name in cadence.transfer.__all__:
        assert getattr(cadence.transfer, name) is not None
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


def test_importing_the_old_fine_tune_module_keeps_cadence_fine_tune_callable():
    # A fresh interpreter: the import sets the package attribute ``cadence.fine_tune`` to the module.
    check = (
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import cadence\n"
        "import cadence.fine_tune\n"
        "import cadence.transfer.fine_tune as new\n"
        "assert cadence.fine_tune.fine_tune is new.fine_tune\n"
        "calls = []\n"
        "def record(*args, **kwargs):\n"
        "    calls.append((args, kwargs))\n"
        "    return 'result'\n"
        "cadence.fine_tune.fine_tune = record  # stands in for the recipe: the call must reach it\n"
        "print(cadence.fine_tune('model', 'data', epochs=3), calls)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "result [(('model', 'data'), {'epochs': 3})]"
