"""Run records: run directories written during training, and reading them back.

``cadence.tracking.run`` writes ``meta.json``, ``metrics.jsonl``, ``summary.json`` and ``config.toml``;
``cadence.tracking.records`` reads run directories back and ``cadence.tracking.compare`` compares groups of
runs over seeds (``cadence.tracking.tables`` prints the comparison).
"""

from cadence.tracking.run import RunWriter, read_json, read_metrics, update_summary_extra, write_json
from cadence.tracking.run_dir import MissingRunFileError, RunDir
from cadence.tracking.toml_writer import dump as dump_toml
from cadence.tracking.toml_writer import dumps as dumps_toml

__all__ = [
    "MissingRunFileError",
    "RunDir",
    "RunWriter",
    "dump_toml",
    "dumps_toml",
    "read_json",
    "read_metrics",
    "update_summary_extra",
    "write_json",
]
