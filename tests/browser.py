"""The browser tests' shared parts: headless Chromium through playwright, a report opened in it, its charts' marks.

Locally the tests skip when Chromium or playwright is missing; under CI (.ci/run installs both) they never skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = ("the browser tests need Chromium and playwright: `sudo apt-get install chromium` (Debian/Ubuntu) "
                "and `pip install -e '.[test]'`; they run under CI")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):  # .ci/run installs the browser: a skip there would hide a broken set-up
        pytest.fail(f"{reason}; {INSTALL_HINT}")
    pytest.skip(f"{reason}; {INSTALL_HINT}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _unavailable("no chromium on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class OpenReport:
    page: Any
    problems: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, dialogs

    def js(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def rows(self) -> int:
        return int(self.js("document.querySelectorAll('#test-table tbody tr').length"))

    def column(self, index: int) -> list[str]:
        cells: list[str] = self.js(
            f"[...document.querySelectorAll('#test-table tbody tr')].map(r => r.cells[{index}].textContent)")
        return cells


@pytest.fixture
def open_report(chromium: Any) -> Iterator[Any]:
    pages = []

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def open_(path: Path, width: int = 1400, height: int = 1000) -> OpenReport:
        page = chromium.new_page(viewport={"width": width, "height": height})
        pages.append(page)
        opened = OpenReport(page)
        page.on("console", lambda m: opened.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: opened.problems.append(f"uncaught: {e}"))
        def on_dialog(dialog: Any) -> None:
            opened.problems.append(f"dialog: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(path.as_uri())
        try:
            page.wait_for_function("window.llmbenchReady === true || window.llmbenchFailed === true", timeout=30_000)
        except PlaywrightTimeout as exc:  # say what the page said, not only that it timed out
            raise AssertionError(f"the report never finished drawing: {opened.problems}") from exc
        assert page.evaluate("window.llmbenchReady") is True, opened.problems
        return opened

    yield open_
    for page in pages:
        page.close()


# Each chart's drawn marks: elements with finite positions inside the plot area, and painted pixels there.
CHART_MARKS = """() => window.llmbenchCharts.map(chart => {
  const area = chart.chartArea, box = chart.canvas.closest('.chart').querySelector('h3');
  const marks = chart.data.datasets.map((d, i) => d.marker ? null : chart.getDatasetMeta(i).data.filter(e =>
      Number.isFinite(e.x) && Number.isFinite(e.y) && e.x >= area.left - 1 && e.x <= area.right + 1).length)
    .filter(n => n !== null);
  const ctx = chart.canvas.getContext('2d');
  const pixels = ctx.getImageData(area.left, area.top, area.right - area.left, area.bottom - area.top).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
  return {name: chart.canvas.id || (box && box.textContent) || '?', marks, painted};
})"""
