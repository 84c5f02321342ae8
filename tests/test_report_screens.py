"""The report's first screen, its phone width and its print (#28), in headless Chromium on reports of real
sessions against the stub server: a sweep says its knee and SLOs before anything else, a comparison its deltas,
a failed run why; nothing is wider than a phone; the printed sweep keeps every column.

With LLMBENCH_SCREENSHOTS=<folder> the sweep, comparison and failure tests save the screenshots docs/ shows.
"""

from __future__ import annotations

import io
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from browser import CHART_MARKS
from openai_stub import OpenAIStub, write_suite
from pypdf import PdfReader
from report_sessions import REPORT_STUB, batch_file, report_file, run_session

STUB = REPORT_STUB
FOLD = 900  # the first screen of a 1400 x 900 window
PHONE = 390
SWEEP_SLOS = ("latency_p99=60s", "ttft_p99=30s")
RUN_COLOURS = ["#2563eb", "#dc2626"]


def _screenshot(report: Any, name: str) -> None:
    folder = os.environ.get("LLMBENCH_SCREENSHOTS")
    if folder:
        report.page.screenshot(path=str(Path(folder) / f"report-{name}.png"))


def _sweep(pytester: pytest.Pytester, stub: OpenAIStub) -> Path:
    suite = write_suite(pytester.path / "sweep.json", [{"prompt": f"France {n}"} for n in range(8)])
    args = [arg for slo in SWEEP_SLOS for arg in ("--llmbench-slo", slo)]
    run_session(pytester, stub, "--llmbench-sweep", "concurrency=1,2,4", *args, suite=suite).assert_outcomes(passed=24)
    return report_file(pytester)


def _box(report: Any, selector: str) -> dict[str, float]:
    box: dict[str, float] = report.js(f"""(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();
        return {{top: r.top, bottom: r.bottom, left: r.left, right: r.right}}; }})()""")
    return box


def test_a_sweep_shows_its_knee_slos_and_levels_on_the_first_screen(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    report = open_report(_sweep(pytester, stub), height=FOLD)
    assert report.problems == []
    _screenshot(report, "sweep")
    assert "the knee is c4" in report.js("document.querySelector('.knee-verdict').textContent")
    slos = report.js("[...document.querySelectorAll('.verdict .slos code')].map(c => c.textContent)")
    assert slos == ["latency_p99 <= 60000 ms", "ttft_p99 <= 30000 ms"]
    for selector in (".knee-verdict", ".verdict .slos", "table.sweep tbody tr:last-child"):
        assert _box(report, selector)["bottom"] <= FOLD, selector  # above the fold, the whole table too
    assert report.js("document.querySelectorAll('#figures, .figure').length") == 0  # no figure pooled over levels
    # the first row is not under the header, and every column, the last too, is inside the window
    cells = report.js("""[...document.querySelector('table.sweep tbody tr').cells].map(c => {
        const r = c.getBoundingClientRect(), hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return {text: c.textContent, own: c.contains(hit), right: r.right}; })""")
    assert cells[0]["text"] == "c1" and cells[1]["text"] == "met"
    assert all(cell["own"] for cell in cells), cells
    assert max(cell["right"] for cell in cells) <= 1400
    # each SLO's figure per level against the load, its limit drawn
    charts = {c["name"]: c for c in report.js(CHART_MARKS)}
    for slo, limit in (("latency_p99 <= 60000 ms", 60000), ("ttft_p99 <= 30000 ms", 30000)):
        assert charts[slo]["marks"] == [3], charts[slo]
        lines = report.js("""(name) => window.llmbenchCharts.find(c => c.data.datasets[0].label === name)
            .data.datasets.filter(d => d.marker).map(d => d.data.map(p => p.y))""", slo)
        assert lines == [[limit, limit]]
    assert charts["Goodput per level"]["marks"] == [3]
    assert charts["Throughput against each user's speed (Pareto)"]["marks"] == [3]


def test_a_printed_sweep_keeps_every_column_of_its_table_and_its_options(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    report = open_report(_sweep(pytester, stub))
    columns = report.js("[...document.querySelectorAll('table.sweep thead th')].map(t => t.textContent)")
    last_row = report.js("[...document.querySelector('table.sweep tbody tr:last-child').cells].map(c => c.textContent)")
    report.page.emulate_media(media="print")
    report.page.wait_for_function("[...document.querySelectorAll('details')].every(d => d.open)",
                                  timeout=5_000)  # Options, cards: unfolded for the paper
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(report.page.pdf(format="A4"))).pages)
    words = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text))  # the PDF's "ﬀ" ligature back to "ff"
    for title in columns:
        assert all(word in words for word in title.split()), title
    for cell in last_row:  # the knee's row, its last column too: nothing cut at the page's edge
        assert cell.replace(" ", "") in words.replace(" ", ""), cell
    assert "concurrency=1,2,4" in words  # the Options table printed open: the PDF says what load ran


def test_nothing_is_wider_than_a_phone(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    from pytest_llmbench.session.report_html.cli import main

    sweep = _sweep(pytester, stub)
    run_session(pytester, stub)
    (plain,) = [p for p in batch_file_all(pytester) if p.parent != sweep.parent]
    both = pytester.path / "both.html"
    assert main([str(batch_file_of(sweep)), str(plain), "-o", str(both)]) == 0
    for path in (sweep, plain.parent / "report.html", both):
        report = open_report(path, width=PHONE, height=800)
        assert report.problems == []
        widths = report.js("""[...document.querySelectorAll('canvas')].map(c => {
            const r = c.getBoundingClientRect(); return [c.closest('.chart').querySelector('h3')?.textContent || c.id, r.left, r.right]; })""")
        assert widths and all(left >= 0 and right <= PHONE for _, left, right in widths), (path.name, widths)
        assert report.js("document.documentElement.scrollWidth") <= PHONE, path.name  # tables scroll inside themselves
        if path == sweep:
            assert report.js("getComputedStyle(document.querySelector('table.sweep')).overflowX") == "auto"


def batch_file_all(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / "llmbench_results").rglob("batch_results_*.json"))


def batch_file_of(report: Path) -> Path:
    (found,) = report.parent.glob("batch_results_*.json")
    return found


def test_no_chart_is_drawn_empty(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    suite = write_suite(pytester.path / "short.json", [{"prompt": f"France {n}"} for n in range(3)])
    run_session(pytester, stub, suite=suite).assert_outcomes(passed=3)  # a run far shorter than one 1 s bucket
    report = open_report(report_file(pytester))
    assert report.problems == []
    charts = report.js(CHART_MARKS)
    assert charts and all(c["marks"] and all(n > 0 for n in c["marks"]) and c["painted"] > 0 for c in charts), charts
    assert report.js("document.getElementById('chart-throughput')") is None
    notes = report.js("[...document.querySelectorAll('.no-data')].map(p => p.textContent)")
    assert any("shorter than one bucket" in note for note in notes), notes


def test_a_failed_run_says_why_first_and_groups_its_failures_by_reason(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub).assert_outcomes(passed=9, failed=2)
    report = open_report(report_file(pytester), height=FOLD)
    assert report.problems == []
    _screenshot(report, "failure")
    why = report.js("[...document.querySelectorAll('.verdict .why li')].map(li => li.textContent)")
    assert sorted(why) == ["1 test failed: HTTP 500", "1 test failed: check contains"]
    assert _box(report, ".verdict .why")["bottom"] <= min(FOLD, _box(report, ".figure")["top"])  # before any tile
    load = report.js("document.querySelector('.verdict .load').textContent")
    assert "suite suite.json" in load and "streaming" in load and re.search(r"achieved [\d.]+ req/s", load), load
    groups = report.js("""[...document.querySelectorAll('#failures details.failure-group')].map(g =>
        [g.querySelector('summary').textContent, [...g.querySelectorAll('article h4')].map(h => h.textContent)])""")
    assert sorted(summary for summary, _ in groups) == ["HTTP 500 — 1 test", "check contains — 1 test"]
    tests = dict(groups)
    assert "broken" in tests["HTTP 500 — 1 test"][0] and "wrong" in tests["check contains — 1 test"][0]


def test_a_comparison_leads_with_its_deltas_and_keeps_each_runs_colour(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    from pytest_llmbench.session.report_html.cli import main

    run_session(pytester, stub)
    stub.delay = 0.3
    run_session(pytester, stub)
    first, second = batch_file_all(pytester)
    out = pytester.path / "compare.html"
    assert main([str(first), str(second), "-o", str(out)]) == 0
    report = open_report(out, height=FOLD)
    assert report.problems == []
    _screenshot(report, "comparison")
    labels = report.js("[...document.querySelectorAll('#comparison table.compare thead th')].slice(1).map(t => t.textContent)")
    assert labels == [first.parent.name, second.parent.name]  # the run ids, not batch_results_<stamp>
    assert _box(report, "#comparison table.compare")["top"] < FOLD
    assert _box(report, "#comparison")["bottom"] <= _box(report, ".run.card")["top"]
    assert report.js("[...document.querySelectorAll('details.run.card')].map(d => d.open)") == [False, False]
    assert report.js("document.querySelectorAll('.run.card table.deltas').length") == 0  # one deltas table
    colours = report.js("""window.llmbenchCharts.flatMap(c => c.data.datasets.filter(d => !d.marker && d.label)
        .map(d => [d.label.split(' · ')[0], d.borderColor]))""")
    pareto = report.js("""window.llmbenchCharts.find(c => c.canvas.closest('#comparison-charts'))
        .data.datasets.map(d => [d.data.length, d.data[0].x, d.data[0].y])""")
    figures = [json.loads(path.read_text(encoding="utf-8"))["aggregate"] for path in (first, second)]
    assert pareto == [[1, pytest.approx(1000 / f["p50_tpot_ms"], rel=1e-3), f["output_throughput"]] for f in figures]
    by_run = {label: {colour for run, colour in colours if run == label} for label in labels}
    assert by_run == {labels[0]: {RUN_COLOURS[0]}, labels[1]: {RUN_COLOURS[1]}}, by_run


def test_the_workloads_token_lengths_are_drawn_from_the_servers_usage(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    """#28 point 7: input and output token lengths per request, as the server's usage counted them."""
    stub.tokenizer = True  # usage counted by the stub's tokenizer: the prompts' lengths differ
    prompts = [" ".join(["France"] * n) for n in (1, 3, 3, 8, 20)]
    suite = write_suite(pytester.path / "lengths.json", [{"prompt": prompt} for prompt in prompts])
    run_session(pytester, stub, suite=suite).assert_outcomes(passed=5)
    report = open_report(report_file(pytester))
    assert report.problems == []
    rows = json.loads(batch_file(pytester).read_text(encoding="utf-8"))["tests"]
    assert len({row["prompt_tokens"] for row in rows}) >= 3 and not any(row["tokens_estimated"] for row in rows)
    for key, field in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        title = {"input_tokens": "Input tokens (server usage)", "output_tokens": "Output tokens (server usage)"}[key]
        drawn = report.js("""(title) => window.llmbenchCharts.find(c => c.canvas.closest('.chart').querySelector('h3')
            .textContent === title + ' — CDF').data.datasets.filter(d => !d.marker)[0].data.map(p => p.x)""", title)
        assert sorted(drawn) == sorted(row[field] for row in rows), key
