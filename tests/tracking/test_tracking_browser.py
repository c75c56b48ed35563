"""report.html renders in a real browser (headless Chromium; skipped when none is installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cadence.tracking.compare import compare_runs, find_run_dirs, load_run
from cadence.tracking.report import write_report

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "check_report_in_browser.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_report_in_browser", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dom_checks_catch_external_references() -> None:
    checker = _checker()
    good = '<table><tr><th>a</th></tr><tr><td>1</td></tr></table><img src="data:image/png;base64,AAAA">'
    assert checker.check_dom(good) == []
    bad = '<table><tr><td>1</td></tr></table><img src="https://example.org/x.png">'
    assert any("data URI" in problem for problem in checker.check_dom(bad))
    assert any("external" in problem for problem in checker.check_dom(bad))


@pytest.mark.slow
def test_report_renders_in_headless_chromium(fake_runs, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    checker = _checker()
    browser = checker.find_browser()
    if browser is None:
        pytest.skip("no Chromium-family browser installed")
    runs = [load_run(path) for path in find_run_dirs([fake_runs()])]
    paths = write_report(compare_runs(runs, target=("val_accuracy", 0.9)), runs, tmp_path / "report")
    dom = checker.dump_dom(browser, paths["html"])
    assert dom.count("<img") == len(list(paths["plots"].iterdir()))
    assert "one_cycle" in dom
    assert "<table" in dom
    assert checker.check_dom(dom) == []
    shot = checker.screenshot(browser, paths["html"], tmp_path / "shot.png")
    assert checker.check_screenshot(shot) == []


#: Measures the laid-out page and writes the numbers into the DOM, which --dump-dom then returns.
_LAYOUT_SCRIPT = """<script>
window.addEventListener("load", () => {
  const wraps = [...document.querySelectorAll(".table-wrap")].map((box) => ({
    overflow: getComputedStyle(box).overflowX,
    scrolls: box.scrollWidth > box.clientWidth,
    inside: box.getBoundingClientRect().right <= document.documentElement.clientWidth + 1,
  }));
  const page = { scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth };
  const out = document.createElement("pre");
  out.id = "layout";
  out.textContent = JSON.stringify({ wraps, page });
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.slow
def test_wide_tables_scroll_inside_their_box_in_a_narrow_window(fake_runs, tmp_path: Path) -> None:
    import json
    import re
    import subprocess
    import tempfile

    checker = _checker()
    browser = checker.find_browser()
    if browser is None:
        pytest.skip("no Chromium-family browser installed")
    runs = [load_run(path) for path in find_run_dirs([fake_runs()])]
    paths = write_report(
        compare_runs(runs, target=("val_accuracy", 0.9)), runs, tmp_path / "report", plots=False
    )
    page = paths["html"].read_text(encoding="utf-8").replace("</body>", _LAYOUT_SCRIPT + "</body>")
    measured = tmp_path / "measured.html"
    measured.write_text(page, encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        window = ["--window-size=520,900", "--dump-dom", measured.resolve().as_uri()]
        dom = subprocess.run(
            [browser, *checker.FLAGS, f"--user-data-dir={profile}", *window],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom)
    assert found is not None, dom[-2000:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(layout["wraps"]) == 2
    assert all(box["overflow"] == "auto" for box in layout["wraps"])
    assert all(box["inside"] for box in layout["wraps"])
    assert any(box["scrolls"] for box in layout["wraps"])  # the summary table is wider than 520 px
    assert layout["page"]["scrollWidth"] <= layout["page"]["width"]  # the page itself never scrolls sideways
