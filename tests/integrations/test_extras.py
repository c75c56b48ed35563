"""The integrations import their framework only when asked, and say which extra to install."""

import subprocess
import sys

import pytest

from cadence.integrations._extras import require


def test_a_missing_framework_names_the_extra_to_install():
    with pytest.raises(ImportError, match=r"pip install 'cadence\[lightning\]'"):
        require("cadence_no_such_framework", "lightning")
    assert require("json", "none").dumps([1]) == "[1]"


def test_importing_the_package_loads_no_framework():
    check = (
        "import sys, cadence.integrations; "
        "print([m for m in ('lightning', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
