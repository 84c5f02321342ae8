"""The HTML report: one self-contained file with charts, written after the batch file or from batch files later.

build.py turns a batch into what the report shows, render.py makes and writes the HTML (Jinja2, Chart.js
inlined), cli.py is the `llmbench-report` command. (adapter/pytest_html.py adds llmbench columns to
pytest-html's report.)
"""

from __future__ import annotations

from .render import DEFAULT_NAME, write_report

__all__ = ["DEFAULT_NAME", "write_report"]
