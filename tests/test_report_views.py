"""The report's second round (#28), in headless Chromium on reports of real sessions against the stub server: a
sweep's levels one at a time, the baseline's distributions beside the run's, the warm-up on the timelines, one chart
per metric when runs would crowd one, token lengths asked for against served, and numbers first on a phone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from browser import CHART_MARKS
from openai_stub import OpenAIStub, write_suite
from report_sessions import REPORT_STUB, batch_file, load_batch, report_file, results, run_session

STUB = REPORT_STUB
RUN_COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706"]
BASELINE_COLOUR = "#6b7280"
PHONE = 390

# The drawn x values of a chart's data (marker lines left out), by the chart's heading.
DRAWN = """(title) => { const canvas = [...document.querySelectorAll('canvas')].find(c =>
    c.closest('.chart').querySelector('h3')?.textContent === title);
  return canvas ? Chart.getChart(canvas).data.datasets.filter(d => !d.marker)
    .map(d => ({label: d.label, colour: d.borderColor, x: d.data.map(p => p.x), y: d.data.map(p => p.y)})) : null; }"""


def _ms(rows: list[dict[str, Any]]) -> list[float]:
    return sorted(round(row["execution_time"] * 1000.0, 3) for row in rows if row["success"])


def test_a_sweeps_levels_draw_their_own_distributions_on_demand(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    suite = write_suite(pytester.path / "sweep.json", [{"prompt": f"France {n}"} for n in range(8)])
    run_session(pytester, stub, "--llmbench-sweep", "concurrency=1,2", suite=suite).assert_outcomes(passed=16)
    batch = load_batch(pytester)
    report = open_report(report_file(pytester))
    assert report.problems == []
    assert report.js("[...document.querySelectorAll('#distribution-level option')].map(o => o.textContent)") == [
        "every level, pooled", "c1", "c2"]
    (pooled,) = report.js(DRAWN, "Latency — CDF")
    assert sorted(pooled["x"]) == _ms(batch["tests"])  # 16 requests
    report.page.select_option("#distribution-level", "c2")
    (level,) = report.js(DRAWN, "Latency — CDF at c2")
    assert level["x"] == _ms([row for row in batch["tests"] if row["level"] == "c2"])  # its 8 requests only
    assert report.js(DRAWN, "Latency — CDF") is None  # the pooled charts made way
    c2 = next(row for row in batch["sweep"]["levels"] if row["level"] == "c2")
    marks = report.js("""(title) => Chart.getChart([...document.querySelectorAll('canvas')].find(c =>
        c.closest('.chart').querySelector('h3').textContent === title)).data.datasets.filter(d => d.marker)
        .map(d => [d.mark, d.data[0].x])""", "Latency — CDF at c2")
    assert marks == [["p50", pytest.approx(c2["p50_latency_ms"])]]  # its own p50; a p90 needs more samples
    notes = report.js("[...document.querySelectorAll('#distribution-charts .no-data')].map(p => p.textContent)")
    assert any(note.startswith("Inter-token latency: per token gap") for note in notes), notes
    assert all(all(n > 0 for n in chart["marks"]) for chart in report.js(CHART_MARKS))
    report.page.select_option("#distribution-level", "")
    assert sorted(report.js(DRAWN, "Latency — CDF")[0]["x"]) == _ms(batch["tests"])
    assert report.problems == []


def test_a_compared_run_draws_its_baselines_distributions_beside_its_own(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    run_session(pytester, stub)
    baseline = batch_file(pytester)
    stub.delay = 0.1
    run_session(pytester, stub, "--llmbench-compare", str(baseline.parent))
    (current,) = [path for path in results(pytester).rglob("batch_results_*.json") if path != baseline]
    report = open_report(current.parent / "report.html")
    assert report.problems == []
    (before, now) = report.js(DRAWN, "Latency — CDF")
    assert before["label"] == f"baseline {baseline.parent.name} · CDF" and before["colour"] == BASELINE_COLOUR
    assert now["colour"] == RUN_COLOURS[0]  # the run keeps its own colour
    assert before["x"] == _ms(json.loads(baseline.read_text(encoding="utf-8"))["tests"])
    assert now["x"] == _ms(json.loads(current.read_text(encoding="utf-8"))["tests"])
    histogram = report.js(DRAWN, "Latency — histogram")
    assert [d["colour"] for d in histogram] == [BASELINE_COLOUR, RUN_COLOURS[0]]
    assert baseline.parent.name in report.js("document.querySelector('.baseline-note').textContent")
    from pytest_llmbench.session.report_html.cli import main  # the same run's report made afterwards: the same

    assert main([str(current), "-o", str(pytester.path / "again.html")]) == 0
    again = open_report(pytester.path / "again.html")
    assert [(d["label"].split(" · ")[0], d["colour"], d["x"]) for d in again.js(DRAWN, "Latency — CDF")] == [
        (f"baseline {baseline.parent.name}", BASELINE_COLOUR, before["x"]), (current.parent.name, RUN_COLOURS[0], now["x"])]


def test_the_warm_up_is_shaded_on_the_timelines(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    stub.delay = 0.05
    run_session(pytester, stub, "--llmbench-warmup", "4", "--llmbench-concurrency", "2",
                "--llmbench-timeline-bucket", "0.02").assert_outcomes(passed=9, failed=2)
    warmup = load_batch(pytester)["load"]["warmup"]
    assert warmup["requests"] == 4 and warmup["start_s"] < warmup["end_s"] <= 0.05  # before the first measured one
    assert warmup["end_s"] - warmup["start_s"] >= 0.05  # two rounds of two requests of 50 ms at least
    report = open_report(report_file(pytester))
    assert report.problems == []
    for chart in ("chart-timeline", "chart-throughput"):
        band = report.js(f"""(() => {{ const c = Chart.getChart('{chart}');
            const i = c.data.datasets.findIndex(d => d.marker && d.mark.startsWith('warm-up'));
            if (i < 0) return null;
            const d = c.data.datasets[i], x = c.scales.x, area = c.chartArea;
            const left = Math.ceil(x.getPixelForValue(d.data[0].x)) + 1, right = Math.floor(x.getPixelForValue(d.data[1].x)) - 1;
            const top = Math.ceil(c.scales[d.yAxisID].getPixelForValue(d.data[0].y)) + 16, bottom = area.bottom - 4;
            const px = c.ctx.getImageData(left, top, right - left, bottom - top).data;
            let shaded = 0;
            for (let k = 0; k < px.length; k += 4) {{
              if (Math.abs(px[k] - 107) < 12 && Math.abs(px[k + 1] - 114) < 12 && Math.abs(px[k + 2] - 128) < 12 && px[k + 3] > 20) shaded++;
            }}
            return {{mark: d.mark, from: d.data[0].x, to: d.data[1].x, shaded: shaded / (px.length / 4), width: right - left}}; }})()""")
        assert band is not None, chart
        assert band["mark"] == "warm-up (4 requests)"
        assert (band["from"], band["to"]) == (pytest.approx(warmup["start_s"]), pytest.approx(warmup["end_s"]))
        assert band["width"] > 5 and band["shaded"] > 0.8, (chart, band)  # painted, not only declared


def test_runs_that_would_crowd_one_chart_get_one_chart_per_metric(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    from pytest_llmbench.session.report_html.cli import main

    run_session(pytester, stub, "--llmbench-timeline-bucket", "0.01")  # a timeline of several buckets
    first = batch_file(pytester)
    stub.delay = 0.01
    run_session(pytester, stub, "--llmbench-timeline-bucket", "0.01")
    (second,) = [path for path in results(pytester).rglob("batch_results_*.json") if path != first]
    out = pytester.path / "compare.html"
    assert main([str(first), str(second), "-o", str(out), "--label", "A", "--label", "B"]) == 0
    report = open_report(out)
    assert report.problems == []
    assert report.js("document.getElementById('chart-throughput')") is None  # 2 runs x 5 series: not in one chart
    titles = report.js("[...document.querySelectorAll('#timeline .per-metric .chart h3')].map(h => h.textContent)")
    assert {"requests completed/s", "output tokens/s", "requests in flight"} <= set(titles), titles
    for title in titles:
        drawn = report.js(DRAWN, title)
        assert [(d["label"], d["colour"]) for d in drawn] == [(f"A · {title}", RUN_COLOURS[0]),
                                                                (f"B · {title}", RUN_COLOURS[1])], title
    assert len(report.js(DRAWN, "Latency — histogram")) == 2  # two runs' histograms share one chart
    assert all(all(n > 0 for n in chart["marks"]) for chart in report.js(CHART_MARKS))
    labels = ["A", "B", "C", "D"]  # four runs' histograms would crowd one: one each, the CDF keeps them together
    assert main([str(first), str(second), str(first), str(second), "-o", str(out),
                 *(arg for label in labels for arg in ("--label", label))]) == 0
    report = open_report(out)
    assert report.problems == []
    for k, label in enumerate(labels):
        (own,) = report.js(DRAWN, f"Latency — histogram, {label}")
        assert own["colour"] == RUN_COLOURS[k], label
    assert len(report.js(DRAWN, "Latency — CDF")) == 4 and report.js(DRAWN, "Latency — histogram") is None
    scales = report.js("""[...document.querySelectorAll('canvas')].filter(c => c.closest('.chart').querySelector('h3')
        ?.textContent.startsWith('Latency — histogram, ')).map(c => { const s = Chart.getChart(c).scales;
        return [s.x.min, s.x.max, s.y.max]; })""")
    assert len(scales) == 4 and all(scale == scales[0] for scale in scales)  # comparable: the same axes


def test_generated_tests_draw_the_token_lengths_asked_for_against_those_served(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    stub.tokenizer = True  # the server counts usage by its tokenizer; the workload builds prompts with it
    suite = pytester.path / "work.json"
    suite.write_text(json.dumps({"test_suite_id": "work", "workload": {
        "type": "synthetic", "count": 10, "seed": 3, "api": "completions", "mix": [[40, 4, 0.5], [120, 8, 0.5]]}}),
        encoding="utf-8")
    run_session(pytester, stub, suite=suite).assert_outcomes(passed=10)
    rows = load_batch(pytester)["tests"]
    report = open_report(report_file(pytester))
    assert report.problems == []
    for name, asked, served in (("Input tokens", "requested_input_tokens", "prompt_tokens"),
                                ("Output tokens", "requested_output_tokens", "completion_tokens")):
        (drawn,) = report.js(DRAWN, f"{name}: asked for against served")
        assert sorted(zip(drawn["x"], drawn["y"])) == sorted((row[asked], row[served]) for row in rows), name
    assert {row["requested_input_tokens"] for row in rows} == {40, 120}


def test_numbers_come_first_in_the_test_and_comparison_tables_on_a_phone(pytester: pytest.Pytester, stub: OpenAIStub, open_report: Any) -> None:
    from pytest_llmbench.session.report_html.cli import main

    run_session(pytester, stub)
    first = batch_file(pytester)
    run_session(pytester, stub)
    (second,) = [path for path in results(pytester).rglob("batch_results_*.json") if path != first]
    out = pytester.path / "compare.html"  # four runs: the comparison's table is wider than a phone
    assert main([str(first), str(second), str(first), str(second), "-o", str(out)]) == 0
    for path in (first.parent / "report.html", out):
        report = open_report(path, width=PHONE, height=800)
        assert report.problems == []
        tables = ["#test-table"] + (["#comparison table.compare", "#comparison table.deltas"] if path == out else [])
        for table in tables:
            report.js(f"document.querySelector('{table}').scrollIntoView()")
            seen = report.js(f"""(() => {{ const t = document.querySelector('{table}');
                const head = [...t.querySelector('thead tr').cells], row = t.querySelector('tbody tr');
                const cells = [...row.cells].map(c => c.getBoundingClientRect());
                const before = cells[0].left;
                t.scrollLeft = t.scrollWidth;  // to the last column: the first stays where it was
                const after = row.cells[0].getBoundingClientRect().left;
                const last = row.cells[row.cells.length - 1].getBoundingClientRect();
                return {{head: head.map(c => c.textContent.trim()), secondRight: cells[1].right, before, after,
                         headTops: head.slice(0, 2).map(c => c.getBoundingClientRect().top),
                         lastRight: last.right,
                         scrolls: t.scrollWidth > t.clientWidth}}; }})()""")
            assert seen["scrolls"] or table.endswith("deltas"), (path.name, table)  # wider than a phone: it scrolls
            assert seen["secondRight"] <= PHONE, (path.name, table, seen)  # the first figure on the first screen
            assert seen["after"] == pytest.approx(seen["before"], abs=1) and seen["lastRight"] <= PHONE + 1, seen
            if table.endswith("deltas"):
                assert seen["head"][:4] == ["test", "before", "after", "change"], seen
            assert seen["headTops"][0] == pytest.approx(seen["headTops"][1], abs=1), seen  # the fixed cell in its row
        heading = report.js("[...document.querySelectorAll('#test-table thead th')].map(t => t.dataset.key || '')")
        assert heading[0] == "id" and heading[1] == "latency", heading  # the id, then the measurements
        assert report.js("getComputedStyle(document.querySelector('#test-table tbody td')).position") == "sticky"
