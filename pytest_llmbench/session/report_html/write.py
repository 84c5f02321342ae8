"""Writing a report file: batches in, one HTML file out, atomically (a half-written report never replaces one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..storage import atomic_write_text
from .render import render_report

DEFAULT_NAME = "report.html"


def write_report(batches: list[tuple[dict[str, Any], str, Path | None]], path: Path,
                 title: str | None = None) -> Path:
    """Render and write the report for (batch, label, folder of its test files) runs; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_report(batches, path, title))
    return path
