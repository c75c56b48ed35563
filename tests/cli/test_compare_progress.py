"""``cadence compare``: the progress line and the ETA, on a fake clock (no real runs, no timing)."""

from pathlib import Path

from cadence.cli import compare_cmd
from cadence.cli.compare_cmd import eta_seconds, plan_jobs, progress_line, run_jobs


class FinishedProcess:
    def __init__(self, return_code: int) -> None:
        self.return_code = return_code

    def poll(self) -> int:
        return self.return_code


class FakeClock:
    """``time`` for compare_cmd: only ``sleep`` moves the clock, by 10 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += 10.0


def test_progress_line_values() -> None:
    assert progress_line(0, 4, 0.0) == "[........................] 0/4 runs, 0 s elapsed, ETA ?"
    assert (
        progress_line(1, 4, 10.0, running=1, width=8)
        == "[##......] 1/4 runs, 1 running, 10 s elapsed, ETA 30 s"
    )
    assert progress_line(3, 4, 150.0, width=4) == "[###.] 3/4 runs, 2:30 elapsed, ETA 50 s"
    assert progress_line(4, 4, 61.0, width=4) == "[####] 4/4 runs, 1:01 elapsed, ETA 0 s"
    assert eta_seconds(0, 5, 3.0) is None
    assert eta_seconds(2, 5, 30.0) == 45.0


def test_run_jobs_reports_progress_and_eta(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "a.toml"
    config.write_text("")
    jobs = plan_jobs([config], 4, tmp_path / "out")
    monkeypatch.setattr(compare_cmd, "time", FakeClock())
    lines: list[str] = []
    bars: list[str] = []
    counts = run_jobs(
        jobs,
        1,
        launcher=lambda job, threads: FinishedProcess(0),
        print_line=lines.append,
        progress=bars.append,
    )
    assert counts["ran"] == 4
    assert bars == [
        "[........................] 0/4 runs, 1 running, 0 s elapsed, ETA ?",
        "[######..................] 1/4 runs, 1 running, 10 s elapsed, ETA 30 s",
        "[############............] 2/4 runs, 1 running, 20 s elapsed, ETA 20 s",
        "[##################......] 3/4 runs, 1 running, 30 s elapsed, ETA 10 s",
    ]
    done = [line for line in lines if line.startswith("[done")]
    assert [line.split("]")[0] for line in done] == [
        "[done 1/4, 10 s, ETA 30 s",
        "[done 2/4, 20 s, ETA 20 s",
        "[done 3/4, 30 s, ETA 10 s",
        "[done 4/4, 40 s",
    ]


def test_progress_bar_redraws_in_place_and_keeps_lines_above(capsys) -> None:
    import io

    stream = io.StringIO()
    bar = compare_cmd._ProgressBar(stream)
    bar.draw("1/2 runs")
    bar.draw("1/2 runs")  # unchanged: not drawn again
    bar.print_line("[done 1/2] a seed 0: completed")
    bar.clear()
    assert stream.getvalue() == "\r\x1b[K1/2 runs" + "\r\x1b[K" + "\r\x1b[K1/2 runs" + "\r\x1b[K"
    assert capsys.readouterr().out == "[done 1/2] a seed 0: completed\n"
