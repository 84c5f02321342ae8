"""The HTML report in a real browser (Debian's headless Chromium through playwright): reports made by real
sessions against the stub server open without errors, draw every chart, and filter, sort and compare.
The first screen, phones and print: test_report_screens.py. The browser itself: browser.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from browser import CHART_MARKS
from openai_stub import OpenAIStub, write_suite
from pytest_httpserver import HTTPServer
from report_sessions import HOSTILE, REPORT_STUB, batch_file, load_batch, report_file, results, run_session

STUB = REPORT_STUB


def test_a_session_report_opens_without_errors_and_every_chart_draws_its_marks(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub, "--llmbench-timeline-bucket", "0.01")  # a short run: a timeline of several buckets
    report = open_report(report_file(pytester))
    assert report.problems == []
    charts = report.js(CHART_MARKS)
    names = [c["name"] for c in charts]
    for metric in ("Latency", "Time to first token", "Inter-token latency", "Time per output token"):
        assert f"{metric} — histogram" in names and f"{metric} — CDF" in names
    assert "chart-timeline" in names and "chart-throughput" in names
    for chart in charts:
        assert chart["marks"] and all(n > 0 for n in chart["marks"]), chart
        assert chart["painted"] > 200, chart


def test_the_timeline_shows_the_test_id_on_hover(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub)
    report = open_report(report_file(pytester))
    point = report.js("""() => { const c = Chart.getChart('chart-timeline'); const e = c.getDatasetMeta(0).data[0];
        const r = c.canvas.getBoundingClientRect(); return {x: r.left + e.x, y: r.top + e.y + window.scrollY,
        id: c.data.datasets[0].data[0].id}; }""")
    report.page.evaluate("document.getElementById('chart-timeline').scrollIntoView()")
    box = report.page.locator("#chart-timeline").bounding_box()
    element = report.js("() => { const e = Chart.getChart('chart-timeline').getDatasetMeta(0).data[0]; return {x: e.x, y: e.y}; }")
    report.page.mouse.move(box["x"] + element["x"], box["y"] + element["y"])
    report.page.wait_for_timeout(100)
    tooltip = report.js("() => Chart.getChart('chart-timeline').tooltip.body.map(b => b.lines.join(' ')).join(' ')")
    assert tooltip.startswith(point["id"] + " — ")


def test_the_test_table_has_every_test_and_filters_and_sorts(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub)
    report = open_report(report_file(pytester))
    assert report.rows() == 11
    assert report.js("document.getElementById('test-count').textContent") == "11 of 11 tests"
    report.page.fill("#test-filter", "q0")
    assert sorted(report.column(0)) == [f"q{n:02d}" for n in range(9)]
    report.page.fill("#test-filter", "")
    report.page.select_option("#test-outcome", "error")
    assert report.column(0) == ["broken"]
    report.page.select_option("#test-outcome", "")
    latency = 5  # id, name, category, model, outcome, latency
    report.page.click("#test-table th[data-key=latency]")
    ascending = report.column(latency)
    timed = [float(v) for v in ascending if v != "—"]
    assert timed == sorted(timed) and ascending[-1] == "—"  # the failed request has no latency: last
    report.page.click("#test-table th[data-key=latency]")
    descending = [float(v) for v in report.column(latency) if v != "—"]
    assert descending == sorted(timed, reverse=True)
    link = report.js("document.querySelector('#test-table tbody a').href")  # as the browser resolved it
    assert link.startswith("file://") and Path(unquote(urlparse(link).path)).is_file()


def test_a_comparison_report_shows_both_runs(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any, httpserver: HTTPServer) -> None:
    from pytest_llmbench.session.report_html.cli import main

    run_session(pytester, stub)
    before = batch_file(pytester).rename(pytester.path / "before.json")
    stub.delay = 0.3  # the second run is slower, beyond any first-run outlier of a busy machine
    run_session(pytester, stub)
    out = pytester.path / "compare.html"
    assert main([str(before), str(batch_file(pytester)), "-o", str(out), "--label", "before", "--label", "after"]) == 0
    report = open_report(out)
    assert report.problems == []
    assert report.js("[...document.querySelectorAll('#comparison table.compare thead th')].map(t => t.textContent.trim())") == [
        "metric", "before", "after"]
    latency_delta = report.js("""[...document.querySelectorAll('#comparison table.compare tbody tr')]
        .find(r => r.cells[0].textContent === 'latency p50').querySelector('.delta').className""")
    assert latency_delta == "delta worse"
    labels = report.js("Chart.getChart(document.querySelector('#distribution-charts canvas')).data.datasets"
                       ".filter(d => !d.marker).map(d => d.label)")
    assert labels == ["before · Latency", "after · Latency"]
    assert report.rows() == 22 and set(report.column(0)) == {"before", "after"}
    moved = report.js("""[...document.querySelectorAll('#comparison table.deltas tbody tr')]
        .map(r => [r.cells[0].textContent, r.cells[3].className])""")
    assert moved and all(verdict == "worse" for _, verdict in moved)  # every test got 300 ms slower
    assert {test for test, _ in moved} <= {f"q{n:02d}" for n in range(9)} | {"wrong"}
    assert all(all(n > 0 for n in c["marks"]) for c in report.js(CHART_MARKS))


def test_a_hostile_answer_opens_no_dialog_and_runs_no_script(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub, hostile=True)
    report = open_report(report_file(pytester))
    assert report.problems == []
    assert report.js("window.__pwned") is None
    assert report.js("document.querySelectorAll('img, iframe, object, embed').length") == 0
    assert report.js("document.querySelectorAll('script').length") == 3
    text = report.js("document.body.innerText")
    assert "</script><script>window.__pwned = 1; alert(1)</script>" in text  # shown as text
    report.page.fill("#test-filter", "hostile")
    assert report.column(0) == ["hostile"]
    report.page.select_option("#timeline-colour", "category")  # the hostile category becomes a legend entry
    assert HOSTILE in report.js("Chart.getChart('chart-timeline').data.datasets.map(d => d.label)")
    assert report.js("window.__pwned") is None and report.problems == []


def test_a_screenshot_of_the_report_is_not_blank(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any, tmp_path: Path) -> None:
    run_session(pytester, stub)
    report = open_report(report_file(pytester))
    png = report.page.screenshot(full_page=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    colours = report.js("""async (data) => {
        const img = new Image(); img.src = 'data:image/png;base64,' + data; await img.decode();
        const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const px = ctx.getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < px.length; i += 4 * 7) seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
        return {width: c.width, height: c.height, colours: seen.size};
    }""", base64.b64encode(png).decode())
    assert colours["width"] == 1400 and colours["height"] > 2000
    assert colours["colours"] > 50  # text, charts in several colours, badges: not a blank page


def test_a_long_table_shows_pages_of_500_rows(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    from report_sessions import report_suite

    run_session(pytester, stub, suite=report_suite(pytester.path / "long.json", passing=520))
    report = open_report(report_file(pytester))
    assert report.rows() == 500
    assert report.js("document.getElementById('test-count').textContent") == "522 of 522 tests, rows 1–500"
    report.page.click("#test-next")
    assert report.rows() == 22
    assert report.js("document.getElementById('test-next').disabled") is True
    report.page.fill("#test-filter", "q51")  # q51 and q510-q519: back to page one, no pager
    assert report.rows() == 11
    assert report.js("document.getElementById('test-pages').hidden") is True


def test_monitored_runs_draw_the_hardware_timeline(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    stub.delay = 0.05  # long enough for the monitor's samples to make a line
    run_session(pytester, stub, "--llmbench-monitor", "--llmbench-monitor-interval", "0.05")
    report = open_report(report_file(pytester))
    assert report.problems == []
    (hardware,) = [c for c in report.js(CHART_MARKS) if c["name"] == "chart-hardware"]
    assert hardware["marks"][:2] and all(n >= 2 for n in hardware["marks"][:2]), hardware  # CPU %, memory %
    assert "CPU mean" in report.js("document.getElementById('hardware').innerText")
    section = load_batch(pytester)["hardware"]  # on the client's time axis: its start_s from the first request
    assert -30 < section["start_s"] < 30
    assert report.js("Chart.getChart('chart-hardware').options.scales.x.title.text") == "s from the first request"
    drawn = report.js("Chart.getChart('chart-hardware').data.datasets.find(d => d.label === 'CPU %').data.map(p => p.x)")
    assert drawn == [pytest.approx(p["t"] + section["start_s"], abs=2e-3) for p in section["timeseries"]
                     if p["cpu_pct"] is not None]


def test_a_run_compared_with_a_baseline_shows_the_deltas(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub)
    baseline = batch_file(pytester).rename(pytester.path / "baseline.json")
    stub.delay = 0.1
    run_session(pytester, stub, "--llmbench-compare", str(baseline), "--llmbench-compare-fail", "p50_latency_ms:10%")
    report = open_report(report_file(pytester))
    rows = report.js("""[...document.querySelectorAll('table.deltas tbody tr')].map(r =>
        [r.cells[0].textContent, r.cells[3].className])""")
    assert ["p50_latency_ms", "worse"] in rows
    assert "Regression: p50_latency_ms" in report.js("document.querySelector('.gates').innerText")
    tested = report.js("""[...document.querySelectorAll('table.deltas tbody tr')]
        .find(r => r.cells[0].textContent === 'p50_latency_ms').cells[4].textContent""")
    assert tested.startswith("p=")  # significant: every request of this run is 100 ms slower


def test_a_change_that_is_not_significant_is_shown_but_not_coloured(pytester: pytest.Pytester, stub: OpenAIStub,
                                                                     open_report: Any) -> None:
    """Issue 30: one test of nine turns slow; the median jumps, the distribution does not (test_significance.py
    explains the 99 % level), and the report shows the change with its test, uncoloured."""
    stub.delays = {"slow": 0.3}
    suite = pytester.path / "s.json"
    write_suite(suite, [{"id": f"t{n}", "prompt": prompt} for n, prompt in enumerate(["fast"] * 5 + ["slow"] * 4)])
    run_session(pytester, stub, suite=suite)
    baseline = batch_file(pytester).rename(pytester.path / "baseline.json")
    write_suite(suite, [{"id": f"t{n}", "prompt": prompt} for n, prompt in enumerate(["fast"] * 4 + ["slow"] * 5)])
    run_session(pytester, stub, "--llmbench-compare", str(baseline), "--llmbench-confidence", "0.99", suite=suite)
    report = open_report(report_file(pytester))
    assert report.problems == []
    cells = report.js("""[...[...document.querySelectorAll('table.deltas tbody tr')]
        .find(r => r.cells[0].textContent === 'p50_latency_ms').cells].map(c => [c.textContent, c.className])""")
    change, tested = cells[3], cells[4]
    assert float(change[0].rstrip("%")) > 1000 and change[1] == ""  # shown, not coloured
    assert tested[0].startswith("not significant (p=")


def test_a_sweep_draws_its_curve_with_the_knee_and_the_load_timeline(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    from openai_stub import write_suite

    suite = write_suite(pytester.path / "sweep.json", [{"prompt": f"France {n}"} for n in range(8)])
    run_session(pytester, stub, "--llmbench-sweep", "concurrency=1,4", "--llmbench-slo", "latency_p99=60s",
                "--llmbench-timeline-bucket", "0.02", suite=suite).assert_outcomes(passed=16)  # a bucket per 20 ms
    report = open_report(report_file(pytester))
    assert report.problems == []
    charts = {c["name"]: c for c in report.js(CHART_MARKS)}
    assert charts["latency_p99 <= 60000 ms"]["marks"] == [2]  # one point per level; the SLO's limit line apart
    knee = report.js("""(() => { const c = window.llmbenchCharts.find(c => c.data.datasets[0].label === 'latency_p99 <= 60000 ms');
        const d = c.data.datasets[0];
        return d.pointStyle.map((s, i) => s === 'star' ? d.data[i].level : null).filter(Boolean); })()""")
    assert knee == ["c4"]
    assert report.js("document.querySelector('table.sweep tr.knee th').textContent") == "c4 ★"
    throughput = report.js("Chart.getChart('chart-throughput').data.datasets.map(d => d.label)")
    assert "requests sent/s" in throughput and "requests in flight" in throughput  # the batch's own timeline
    first_sent = {level: min(r["start_s"] for r in load_batch(pytester)["tests"] if r["level"] == level)
                  for level in ("c1", "c4")}
    for chart in ("chart-throughput", "chart-timeline"):  # each level's start marked where its first request went
        marks = report.js(f"Chart.getChart('{chart}').data.datasets.filter(d => d.marker).map(d => [d.mark, d.data[0].x])")
        assert marks == [[level, pytest.approx(t, abs=1e-3)] for level, t in first_sent.items()], (chart, marks)


def test_a_server_section_draws_one_chart_per_series(pytester: pytest.Pytester, metrics_stub: OpenAIStub, open_report: Any) -> None:
    """A real run whose endpoint serves vLLM's /metrics (a prometheus_client exporter its answers move): each series
    its own chart, named as the server catalog names it, on the client's time axis (#28 point 3)."""
    run_session(pytester, metrics_stub, "--llmbench-server-metrics-interval", "0.2").assert_outcomes(passed=10, failed=1)
    report = open_report(report_file(pytester))
    assert report.problems == []
    charts = {c["name"]: c for c in report.js(CHART_MARKS)}
    server = load_batch(pytester)["server"]
    timeline, points = server["timeline"], len(server["timeline"])
    flat = report.js("[...document.querySelectorAll('#server .no-data')].map(p => p.textContent)")
    names = {"requests_running": "Requests running", "requests_waiting": "Requests waiting",
             "kv_cache_usage_pct": "KV cache usage, %"}
    for series, name in names.items():
        if all(point.get(series) == 0 for point in timeline):  # no chart for a line flat at 0: one line says so
            assert f"{name}: 0 throughout the run" in flat and name not in charts
        else:
            assert charts[name]["marks"] == [points] and charts[name]["painted"], charts[name]
    assert "Requests running" in charts and not any("_" in name for name in charts)  # no raw names
    assert charts["Generated tokens/s"]["marks"] == [points - 1]  # a rate needs the reading before it
    assert "kv_cache_usage_peak_pct" in report.js("document.getElementById('server').textContent")
    # the first scrape (at session start) came before the first request: at a negative time on the client's axis
    assert -30 < server["start_s"] < 0
    drawn = report.js("""Chart.getChart([...document.querySelectorAll('#server-charts canvas')].find(c =>
        c.closest('.chart').querySelector('h3').textContent === 'Requests running'))
        .data.datasets.filter(d => !d.marker)[0].data.map(p => p.x)""")
    assert drawn == [pytest.approx(point["t"] + server["start_s"], abs=2e-3) for point in timeline]
    assert report.js("Chart.getChart(document.querySelector('#server-charts canvas')).options.scales.x.title.text") == \
        report.js("Chart.getChart('chart-timeline').options.scales.x.title.text").removeprefix("sent, ")


def test_what_changed_shows_escaped_word_diffs_of_the_changed_answers(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub)
    first = batch_file(pytester)
    stub.answers = {"France, 1?": HOSTILE, **stub.answers, "France": "Rome is the capital of France."}
    run_session(pytester, stub, "--llmbench-compare", str(first.parent))
    [report_path] = [p for p in results(pytester).glob("*/report.html")
                     if p.parent != first.parent and not p.parent.is_symlink()]
    report = open_report(report_path)
    assert report.problems == [] and report.js("window.__pwned") is None
    rows = report.js("""[...document.querySelectorAll('#what-changed table.drift tbody tr')].map(r =>
        [r.cells[0].textContent, r.cells[3].textContent.trim(),
         [...r.cells[4].querySelectorAll('del')].map(e => e.textContent.trim()),
         [...r.cells[4].querySelectorAll('ins')].map(e => e.textContent.trim())])""")
    assert len(rows) == 10  # the nine q tests and 'wrong' changed; 'broken' has no answer
    q00 = next(row for row in rows if row[0] == "q00")
    assert q00[2] == ["Paris"] and q00[3] == ["Rome"]
    wrong = next(row for row in rows if row[0] == "wrong")
    assert wrong[1] == "fail → fail"
    q01 = next(row for row in rows if row[0] == "q01")
    assert "".join(q01[3]).replace(" ", "") == HOSTILE.replace(" ", "").strip()  # shown as text, run as nothing
    assert report.js("document.querySelector('nav.toc a[href=\"#what-changed\"]') !== null")
    assert report.js("getComputedStyle(document.querySelector('#what-changed ins')).backgroundColor") != \
        report.js("getComputedStyle(document.querySelector('#what-changed del')).backgroundColor")


def test_inside_the_server_draws_each_requests_stacked_parts(pytester: pytest.Pytester, open_report: Any) -> None:
    from openai_stub import write_suite
    from timing_servers import serving

    suite = write_suite(pytester.path / "s.json", [{"id": f"t{n}"} for n in range(12)])
    for server in serving("vllm"):
        pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite), "--llmbench-stream",
                           "--llmbench-server-timing", "-p", "no:cacheprovider").assert_outcomes(passed=12)
    report = open_report(report_file(pytester))
    assert report.problems == []
    charts = {c["name"]: c for c in report.js(CHART_MARKS)}
    stacked = charts["Where the time went, the slowest requests"]
    assert stacked["marks"] == [12, 12, 12, 12] and stacked["painted"] > 200, stacked
    assert charts["Each part's distribution"]["marks"] == [1, 1, 1, 1]  # the p50 of 12 requests (a p90 needs 36)
    assert report.js("Chart.getChart(document.querySelector('#breakdown-charts canvas')).options.scales.x.stacked")
