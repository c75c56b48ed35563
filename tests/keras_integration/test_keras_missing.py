"""Without Keras, ``import cadence.keras`` says what to install (runs whether or not Keras is installed)."""

import subprocess
import sys

CHECK = """
import sys
sys.modules["keras"] = None  # as if Keras were not installed
from cadence.errors import MissingDependencyError
try:
    import cadence.keras
except MissingDependencyError as error:
    print(error)
print("torch" in sys.modules)
"""


def test_import_without_keras_names_the_extra() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    message, torch_loaded = result.stdout.strip().splitlines()
    assert message == "cadence.keras needs Keras 3: pip install 'cadence[keras]'"
    assert torch_loaded == "False"  # it fails fast, before anything heavy is imported
