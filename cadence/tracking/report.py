"""Write a comparison as ``report.html`` (self-contained), ``report.md`` and ``results.json``.

The HTML file has its CSS inline and its plots embedded as base64 PNG ``data:`` URIs: it references nothing
outside itself, so it can be mailed, attached to an issue or opened offline. ``report.md`` holds the same
tables and links to the PNG files written next to it under ``plots/``.

Example::

    runs = [load_run(path) for path in find_run_dirs(["out/runs"])]
    comparison = compare_runs(runs, target=("val_accuracy", 0.9))
    paths = write_report(comparison, runs, "out")
    print(paths["html"])
"""

from __future__ import annotations

import base64
import datetime
import html
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadence.errors import MissingDependencyError
from cadence.tracking.compare import write_results_json
from cadence.tracking.records import RunRecord
from cadence.tracking.tables import format_seconds, table_rows

__all__ = ["render_html", "render_markdown", "tracker_links", "write_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
td { white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.failed td { color: #b00020; }
.status-completed { color: #137333; } .status-failed, .status-diverged, .status-incomplete { color: #b00020; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; border: 1px solid #eee; }
ul.stats li { margin-bottom: 0.3em; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def _stamp() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}, {platform.node() or 'unknown host'} ({platform.machine()}, {platform.system()})"


def _run_rows(comparison: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    metric = comparison.get("primary_metric") or ""
    header = ["config", "seed", "status", "steps", "wall time (s)", f"final {metric}".strip(), "path"]
    rows = []
    for group in comparison["groups"]:
        for run in group["runs"]:
            value = run["final"].get(metric) if metric else None
            shown = "—"
            if value is not None:
                shown = f"{value * 100:.2f}" if "accuracy" in metric and 0 <= value <= 1 else f"{value:.4g}"
            status = run["status"] + (f" ({run['error']})" if run.get("error") and not run["usable"] else "")
            rows.append(
                [
                    group["name"],
                    "—" if run["seed"] is None else str(run["seed"]),
                    status,
                    "—" if run["steps"] is None else str(run["steps"]),
                    format_seconds(run["wall_time"]),
                    shown,
                    run["path"],
                ]
            )
    return header, rows


def tracker_links(comparison: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """``(run, text, url)`` for every tracker run recorded in the compared runs' ``meta.json``.

    ``url`` is the tracker's page for the run when it has one (an MLflow server, W&B online), else None and
    ``text`` says where the run is (the tracking URI and run ID, the offline directory, the log directory).
    """
    links: list[tuple[str, str, str | None]] = []
    for group in comparison["groups"]:
        for run in group["runs"]:
            label = f"{group['name']} seed {'—' if run['seed'] is None else run['seed']}"
            for name, entry in (run.get("trackers") or {}).items():
                if not isinstance(entry, dict):
                    continue
                url = (
                    entry.get("url")
                    if str(entry.get("url") or "").startswith(("http://", "https://"))
                    else None
                )
                if entry.get("error"):
                    text = f"{name}: failed ({entry['error']})"
                elif name == "mlflow":
                    text = f"mlflow run {entry.get('run_id')} (experiment {entry.get('experiment')}, "
                    text += f"{entry.get('tracking_uri')})"
                elif name == "wandb":
                    text = f"wandb run {entry.get('run_id')} (project {entry.get('project')}"
                    text += f", offline in {entry['dir']})" if not url and entry.get("dir") else ")"
                elif name == "tensorboard":
                    text = f"tensorboard --logdir {entry.get('log_dir')}"
                else:
                    details = ", ".join(f"{key} {value}" for key, value in entry.items() if key != "url")
                    text = f"{name}: {details}" if details else name
                links.append((label, text, url))
    return links


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(clean(cell) for cell in header) + " |",
        "|" + "|".join("---" if index == 0 else "---:" for index in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(clean(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _schedule_lines(comparison: dict[str, Any]) -> list[tuple[str, str]]:
    lines = []
    for group in comparison["groups"]:
        for key, text in (group.get("schedules") or {}).items():
            lines.append((f"{group['name']} {key}", str(text)))
    return lines


def _note(comparison: dict[str, Any]) -> str:
    metric = comparison.get("primary_metric") or "the metric"
    return (
        f"Values are mean ± sample standard deviation over seeds; accuracies are in percent, in the tables "
        f"and on the plot axes. The significance tests compare final {metric} against the first "
        "configuration; each confidence interval comes from the same Welch test as its verdict. Failed, "
        "diverged and incomplete runs are listed with their real cost but left out of the statistics and of "
        "the plot axis ranges (a diverged curve is drawn dashed and clipped, ending in an x)."
    )


def render_markdown(
    comparison: dict[str, Any], plot_files: Sequence[str] = (), title: str = "cadence compare"
) -> str:
    """The report as Markdown: main table, significance, per-run table, schedules, plot links."""
    header, rows = table_rows(comparison)
    parts = [f"# {title}", "", f"_{_stamp()}_", "", _note(comparison), "", _markdown_table(header, rows), ""]
    if comparison.get("significance"):
        parts += ["## Significance", ""] + [f"- {entry['statement']}" for entry in comparison["significance"]]
        parts.append("")
    if comparison.get("failed_runs"):
        parts += ["## Failed runs", ""]
        parts += [
            f"- {item['group']} seed {item['seed']}: {item['status']}"
            + (f" — {item['error']}" if item.get("error") else "")
            for item in comparison["failed_runs"]
        ]
        parts.append("")
    run_header, run_rows = _run_rows(comparison)
    parts += ["## Runs", "", _markdown_table(run_header, run_rows), ""]
    links = tracker_links(comparison)
    if links:
        parts += ["## Tracker runs", ""]
        parts += [f"- {run}: [{text}]({url})" if url else f"- {run}: {text}" for run, text, url in links]
        parts.append("")
    schedules = _schedule_lines(comparison)
    if schedules:
        parts += ["## Schedules", ""] + [f"- {name}: `{text}`" for name, text in schedules] + [""]
    if plot_files:
        parts += ["## Plots", ""] + [f"![{Path(name).stem}](plots/{name})" for name in plot_files] + [""]
    return "\n".join(parts)


def _html_table(header: list[str], rows: list[list[str]], failed_rows: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = []
    for index, row in enumerate(rows):
        css = ' class="failed"' if index in failed_rows else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="table-wrap">{table}</div>'  # a wide table scrolls inside its box, not the page


def render_html(
    comparison: dict[str, Any], plots: dict[str, bytes] | None = None, title: str = "cadence compare"
) -> str:
    """The report as one self-contained HTML page (inline CSS, plots as base64 PNG data URIs)."""
    header, rows = table_rows(comparison)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{html.escape(_stamp())}</p>',
        f"<p>{html.escape(_note(comparison))}</p>",
        "<h2>Summary</h2>",
        _html_table(header, rows),
    ]
    if comparison.get("significance"):
        parts.append('<h2>Significance</h2><ul class="stats">')
        parts += [f"<li>{html.escape(entry['statement'])}</li>" for entry in comparison["significance"]]
        parts.append("</ul>")
    run_header, run_rows = _run_rows(comparison)
    failed = {
        index
        for index, row in enumerate(run_rows)
        if not row[2].startswith(("completed", "stopped", "stalled"))
    }
    parts += ["<h2>Runs</h2>", _html_table(run_header, run_rows, failed)]
    links = tracker_links(comparison)
    if links:  # links to the trackers' pages: followed on a click, nothing is loaded from them
        parts.append("<h2>Tracker runs</h2><ul>")
        for run, text, url in links:
            shown = html.escape(text)
            if url:
                shown = f'<a href="{html.escape(url, quote=True)}">{shown}</a>'
            parts.append(f"<li>{html.escape(run)}: {shown}</li>")
        parts.append("</ul>")
    schedules = _schedule_lines(comparison)
    if schedules:
        parts.append("<h2>Schedules</h2><ul>")
        parts += [
            f"<li>{html.escape(name)}: <code>{html.escape(text)}</code></li>" for name, text in schedules
        ]
        parts.append("</ul>")
    if plots:
        parts.append('<h2>Plots</h2><div class="plots">')
        for name, data in plots.items():
            encoded = base64.b64encode(data).decode("ascii")
            caption = html.escape(Path(name).stem.replace("_", " "))
            parts.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{encoded}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    comparison: dict[str, Any],
    runs: Sequence[RunRecord],
    out_dir: str | Path,
    *,
    title: str = "cadence compare",
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``results.json``, ``report.md``, ``report.html`` and ``plots/*.png`` into ``out_dir``.

    Without matplotlib the reports are written without plots (and the returned dict has no "plots" key).
    Returns the paths written: ``{"results", "markdown", "html", "plots"}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    if plots:
        try:
            from cadence.tracking.plots import comparison_plots

            images = comparison_plots(runs, comparison.get("primary_metric"))
        except MissingDependencyError:
            images = {}
    paths: dict[str, Path] = {"results": write_results_json(comparison, out / "results.json")}
    if images:
        plot_dir = out / "plots"
        plot_dir.mkdir(exist_ok=True)
        for name, data in images.items():
            (plot_dir / name).write_bytes(data)
        paths["plots"] = plot_dir
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(render_markdown(comparison, list(images), title), encoding="utf-8")
    paths["html"] = out / "report.html"
    paths["html"].write_text(render_html(comparison, images, title), encoding="utf-8")
    return paths
