"""Render a cadence report.html in headless Chromium and check that its tables and plots show up.

    python benchmarks/check_report_in_browser.py out/report.html [--screenshot shot.png]

Two renderings: ``--dump-dom`` (the DOM after load: tables with rows, <img> elements whose sources are
embedded PNG data URIs) and ``--screenshot`` (the page is actually painted: the image holds plot colours,
not just white and text grey). Exit code 0 when every check passes, 1 otherwise, 2 without a browser.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--hide-scrollbars",
]


def find_browser() -> str | None:
    """Path of an installed Chromium-family browser, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_dom(browser: str, html_path: Path, timeout: float = 60.0) -> str:
    with tempfile.TemporaryDirectory() as profile:
        completed = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", html_path.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    return completed.stdout


def screenshot(browser: str, html_path: Path, output: Path, timeout: float = 60.0) -> Path:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={output.resolve()}",
                "--window-size=1280,2400",
                html_path.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    return output


def check_dom(dom: str) -> list[str]:
    """Problems found in the rendered DOM (an empty list means all good)."""
    problems = []
    if "<table" not in dom:
        problems.append("no <table> in the rendered page")
    if len(re.findall(r"<tr[ >]", dom)) < 2:
        problems.append("tables have no data rows")
    images = re.findall(r"<img\b[^>]*>", dom)
    if not images:
        problems.append("no <img> in the rendered page")
    for tag in images:
        source = re.search(r'src="([^"]*)"', tag)
        if not source or not source.group(1).startswith("data:image/png;base64,"):
            problems.append(f"image not embedded as a PNG data URI: {tag[:80]}")
    if re.search(r"(?:src|href)=\"(?:https?:|file:|//)", dom):
        problems.append("the page references an external resource")
    return problems


def check_screenshot(path: Path) -> list[str]:
    """The screenshot exists and shows coloured plot lines (not only white and grey text)."""
    if not path.exists() or path.stat().st_size == 0:
        return ["no screenshot was written"]
    try:
        import numpy as np
        from matplotlib.image import imread
    except ImportError:
        return []
    pixels = np.asarray(imread(str(path)))[..., :3].astype(float)
    spread = pixels.max(axis=-1) - pixels.min(axis=-1)  # 0 for white, black and greys
    coloured = float((spread > 0.25).mean())
    if coloured < 0.001:
        return [f"the screenshot shows no coloured plot pixels (fraction {coloured:.5f})"]
    return []


def check_report(html_path: Path, browser: str, screenshot_path: Path | None = None) -> list[str]:
    """All problems found rendering ``html_path`` in ``browser``."""
    problems = check_dom(dump_dom(browser, html_path))
    with tempfile.TemporaryDirectory() as folder:
        shot = screenshot_path or Path(folder) / "report.png"
        problems += check_screenshot(screenshot(browser, html_path, shot))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="path of report.html")
    parser.add_argument("--screenshot", type=Path, default=None, help="also keep the screenshot here")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium-family browser found (apt-get install chromium)", file=sys.stderr)
        return 2
    if not args.report.exists():
        print(f"report not found: {args.report}", file=sys.stderr)
        return 2
    problems = check_report(args.report, browser, args.screenshot)
    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print(f"ok: {args.report} renders in {Path(browser).name} with tables and embedded plots")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
