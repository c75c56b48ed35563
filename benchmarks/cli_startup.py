"""Start-up time of ``cadence --help`` and ``cadence --version`` against ``python -c "import torch"``.

Each command runs in a fresh interpreter, ``--repeats`` times, interleaved (help, version, torch, help, ...)
so that the machine's load falls on all three alike; the report gives mean ± std of the wall time and the
ratio of each cadence command to ``import torch``. ``--source DIR`` times the cadence found in ``DIR`` (a
checkout, e.g. a worktree of an older revision) instead of the installed one.

    python benchmarks/cli_startup.py --repeats 10
    git worktree add /tmp/cadence-before b951fd4
    python benchmarks/cli_startup.py --repeats 10 --source /tmp/cadence-before
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def cadence_command(arguments: list[str], source: str | None) -> list[str]:
    prelude = f"import sys; sys.path.insert(0, {source!r}); " if source else "import sys; "
    code = (
        prelude + "import cadence.cli.main as m; "
        "assert sys.modules['cadence'].__file__.startswith(sys.argv[1]), 'not the cadence asked for'; "
        f"sys.exit(m.main({arguments!r}))"
    )
    return [sys.executable, "-c", code, source or ""]


def time_once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--source", default=None, help="a cadence checkout to time instead of the installed one"
    )
    args = parser.parse_args()
    commands = {
        "cadence --help": cadence_command(["--help"], args.source),
        "cadence --version": cadence_command(["--version"], args.source),
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    for command in commands.values():  # warm the file cache once
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            try:
                times[name].append(time_once(command))
            except subprocess.CalledProcessError:  # --help exits 0, --version 0; anything else is a failure
                raise SystemExit(f"{name} failed") from None
    torch_mean = statistics.mean(times['python -c "import torch"'])
    print(f"source: {args.source or 'installed'}; repeats: {args.repeats}")
    print("| command | wall time (s), mean ± std | ratio to import torch |")
    print("|---|---|---|")
    for name, values in times.items():
        mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| `{name}` | {mean:.3f} ± {std:.3f} | {mean / torch_mean:.2f} |")


if __name__ == "__main__":
    main()
