"""llmbench figures in pytest-html's report (when `--html` is given): latency, TTFT and tokens/s columns, and the
test's prompt and answer as an extra. pytest-html stays optional: nothing here imports it.

The figures and the extra are put on the report where the test ran (an xdist worker too: both are plain data that
travel with the report); the columns are filled where pytest-html builds its table, on the controller.
"""

from __future__ import annotations

from typing import Any

import pytest
from markupsafe import escape

from ..http.redact import Secrets
from ..result import TestResult
from ..session.render import render_completion_text

FIGURES_ATTRIBUTE = "llmbench_figures"
COLUMNS = (("llmbench_latency", "Latency s"), ("llmbench_ttft", "TTFT s"), ("llmbench_tps", "Tokens/s"))
EXTRA_CHARS = 50_000  # of the prompt-and-answer text shown in the extra
_AFTER = 3  # pytest-html's own cells: result, test, duration, then ours


def html_report_wanted(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "htmlpath", None)) and config.pluginmanager.hasplugin("html")


def add_html_extras(report: Any, result: TestResult, secrets: list[str]) -> None:
    """The figures for our columns and an escaped prompt-and-answer extra, on the report."""
    setattr(report, FIGURES_ATTRIBUTE, {
        "llmbench_latency": result.execution_time if result.success else None,
        "llmbench_ttft": result.ttft,
        "llmbench_tps": result.tokens_per_second,
    })
    text = Secrets(secrets).mask(render_completion_text(result.to_dict()))
    if len(text) > EXTRA_CHARS:
        text = text[:EXTRA_CHARS] + f"\n… ({len(text) - EXTRA_CHARS} more characters in the completion file)"
    extra = {"name": "llmbench prompt and answer", "format_type": "html", "mime_type": None, "extension": None,
             "content": f'<pre class="llmbench" style="white-space: pre-wrap">{escape(text)}</pre>'}
    report.extras = [*(getattr(report, "extras", None) or []), extra]


class PytestHtmlColumns:
    """pytest-html's table hooks; registered only when pytest-html is installed."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        for offset, (key, title) in enumerate(COLUMNS):
            cells.insert(_AFTER + offset, f'<th class="sortable" data-column-type="{key}">{title}</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        figures = getattr(report, FIGURES_ATTRIBUTE, None) or {}
        for offset, (key, _) in enumerate(COLUMNS):
            value = figures.get(key)
            digits = 1 if key == "llmbench_tps" else 3
            shown = f"{value:.{digits}f}" if isinstance(value, (int, float)) else ""
            cells.insert(_AFTER + offset, f'<td class="col-{key}">{shown}</td>')
