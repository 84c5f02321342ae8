"""The report as one HTML file: Jinja2 with autoescaping, the chart library and our script inlined once, written
atomically (a half-written report never replaces one).

Hostile text (test names, answers, server messages) reaches the page two ways, both inert: as template values,
which Jinja escapes, and inside the JSON data island, whose `<`, `>`, `&` and line separators are written as
`\\uXXXX` escapes, so no answer can close the `<script>` element or start markup.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..._version import __version__
from ...batch import Batch
from ...metrics.samples import rule
from ...result import dumps_strict
from ..storage import atomic_write_text
from .build import COLUMNS, GROUP_COLUMNS, HEADLINE, SLOWEST, TIMELINE, baseline_chart, build_run, metric_view
from .compare import comparison, shared_figures, test_changes
from .drift import what_changed

DEFAULT_NAME = "report.html"
_PACKAGE = "pytest_llmbench.session.report_html"
# The report's script, in parts joined in this order inside one function (they share its names): templates/js/.
SCRIPTS = ("core.js", "distributions.js", "timelines.js", "sweep.js", "capacity.js", "table.js", "main.js")
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: it cannot end the element or open a comment (NaN is null)."""
    return dumps_strict(data).translate(_SCRIPT_ESCAPES)


@cache
def _asset(*parts: str) -> str:
    text = resources.files(_PACKAGE).joinpath(*parts).read_text(encoding="utf-8")
    if "</script" in text.lower():  # an inlined script must not be able to end its own element
        raise ValueError(f"{'/'.join(parts)} contains '</script' and cannot be inlined")
    return text


def _script() -> str:
    parts = "\n".join(_asset("templates", "js", name) for name in SCRIPTS)
    return '(function () {\n"use strict";\n' + parts + "})();\n"


def render_report(batches: list[tuple[Batch, str, Path | None]], report_path: Path,
                  title: str | None = None, baseline: tuple[Batch, str] | None = None) -> str:
    """The HTML text for one or more runs: (batch, label, folder its test files are relative to) each; ``baseline``
    (batch, label): the run's ``--llmbench-compare`` baseline, whose distributions are drawn beside the run's."""
    from .environment import report_environment  # Jinja2 loads with the first report (see environment.py)

    report_dir = report_path.parent
    runs = [build_run(batch, label=label, batch_dir=folder, report_dir=report_dir)
            for batch, label, folder in batches]
    aggregates, rows, shared = shared_figures([batch for batch, _, _ in batches])
    data = {"runs": [run["chart"] for run in runs], **metric_view(),
            "baseline": None if baseline is None else baseline_chart(*baseline, report_dir)}
    payload = script_json(data)
    template = report_environment().get_template("report.html.j2")
    return template.render(
        title=title or ("llmbench comparison" if len(runs) > 1 else "llmbench report"),
        runs=runs,
        comparison=comparison(aggregates, rows) if len(runs) > 1 else None,
        shared=shared,
        few_samples_rule=rule(batches[-1][0].get("aggregate") or {}),
        test_changes=test_changes(batches[0][0], batches[-1][0]) if len(runs) > 1 else None,
        what_changed=what_changed(batches),
        headline=HEADLINE,
        group_columns=GROUP_COLUMNS,
        slowest_columns=[metric.title for metric in SLOWEST],
        timeline_title=TIMELINE.title,
        columns=[(metric.key, metric.label) for metric in COLUMNS],
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=__version__,
        chart_js=_asset("vendor", "chart.umd.min.js"),
        report_js=_script(),
        baseline_label=None if baseline is None else baseline[1],
        levels=list(dict.fromkeys(level["level"] for run in runs if run["sweep"] for level in run["sweep"]["table"])),
        report_css=_asset("templates", "report.css"),
        payload=payload,
    )


def write_report(batches: list[tuple[Batch, str, Path | None]], path: Path,
                 title: str | None = None, baseline: tuple[Batch, str] | None = None) -> Path:
    """Render and write the report for (batch, label, folder of its test files) runs; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_report(batches, path, title, baseline))
    return path
