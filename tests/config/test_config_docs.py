"""``docs/config.md``'s key reference is generated from the config schema, never written by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cadence.cli.main import main
from cadence.config.describe import (
    GENERATED_END,
    GENERATED_START,
    config_reference,
    config_reference_markdown,
    with_generated_reference,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
REGENERATE = "python -m cadence.config.describe --update docs/config.md"


def test_docs_config_md_holds_the_generated_key_reference():
    # A fresh interpreter, as the command that regenerates the file: names that other tests register in this
    # process (datasets, models, schedules) are not part of the reference.
    generated = subprocess.run(
        [sys.executable, "-m", "cadence.config.describe", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = DOC.read_text(encoding="utf-8")
    assert text.count(GENERATED_START) == 1
    assert text.count(GENERATED_END) == 1
    block = text.split(GENERATED_START)[1].split(GENERATED_END)[0]
    assert block == f"\n\n{generated}\n", (
        f"docs/config.md's key reference differs from the config schema; regenerate it with `{REGENERATE}`"
    )


def test_the_markdown_reference_has_every_key_of_config_help():
    markdown = config_reference_markdown()
    assert markdown.startswith("### `[data]`\n")
    for line in config_reference().splitlines():
        if line.startswith("    ") or (line.startswith("  ") and "; default " in line):
            key = line.split()[0]
            assert f"| `{key}` |" in markdown, key
    assert "| `log_every_n_steps` | a whole number >= 1 | 10 |" in markdown
    assert '| `lr_scaling` | one of "none", "linear", "sqrt" | linear (when the global batch changes) |' in (
        markdown
    )
    assert (
        "**`[loggers.mlflow]`** (cadence.tracking.loggers.MLflowLogger; pip install 'cadence[mlflow]')"
        in (markdown)
    )
    assert '| `compile` | true, false or a table {mode = "default" \\| ' in markdown


def test_update_rewrites_only_the_generated_block(tmp_path, capsys):
    from cadence.config.describe import main as describe_main

    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nprose before\n\n{GENERATED_START}\nstale\n{GENERATED_END}\n\nprose after\n")
    assert describe_main(["--update", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\nprose before\n\n")
    assert text.endswith(f"{GENERATED_END}\n\nprose after\n")
    assert "stale" not in text
    assert f"{GENERATED_START}\n\n{config_reference_markdown()}\n{GENERATED_END}" in text
    assert describe_main(["--markdown"]) == 0
    assert capsys.readouterr().out == config_reference_markdown()
    assert describe_main([]) == 0
    assert main(["config-help"]) == 0
    both = capsys.readouterr().out
    assert both == config_reference() * 2
    with pytest.raises(ValueError, match="generated:start"):
        with_generated_reference("no markers here\n")
