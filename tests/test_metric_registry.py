"""A metric declared only in ``result.METRICS`` reaches every consumer: CONTRIBUTING.md's walk-through, tested.

The package is copied and one ``Metric`` added to its registry, nothing else: a figure the client already
measures (``completion_tokens``) becomes the metric ``answer_size``. Real sessions against the stub server then
must show it in the batch's statistics, the terminal table, per-test and run SLOs, the comparison with a baseline
(with its direction), the HTML report (headline, distribution, group table, table of tests) and llmbench-report's
comparison. A consumer that keeps its own list of metrics fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

import pytest_llmbench

STUB = {"answers": {"France": "Paris is the capital of France."}}

THROWAWAY = (
    '    Metric("completion_tokens", "answer_size", "answer tok", seconds=False, rate_unit="tok", '
    'title="answer size", test_slo="max_answer_size", headline=("p50",), groups=("p50",), baseline=("mean",), '
    'distribution="Answer size", column=True),\n'
)


@pytest.fixture
def package_copy(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package with one more declaration at the end of METRICS, first on the path of every subprocess."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(Path(pytest_llmbench.__file__).parent, root / "pytest_llmbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    source = root / "pytest_llmbench" / "result.py"
    text = source.read_text(encoding="utf-8")
    start = text.index("METRICS: tuple[Metric, ...] = (\n")
    end = text.index("\n)\n", start) + 1
    source.write_text(text[:end] + THROWAWAY + text[end:], encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(root), os.environ.get("PYTHONPATH")))))
    return root


def _session(pytester: pytest.Pytester, stub: OpenAIStub, *args: str) -> tuple[pytest.RunResult, dict[str, Any], str]:
    suite = write_suite(pytester.path / "suite.json", [
        {"id": "a", "category": "one", "prompt": "France?"},
        {"id": "b", "category": "two", "prompt": "France, again?"},
        {"id": "small", "category": "two", "prompt": "France, once more?", "slo": {"max_answer_size": 2}},
    ])
    # at 75 % confidence 3 samples bound a median (at 95 % it takes 6: metrics/intervals.py)
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                           "--llmbench-retries", "0", "-p", "no:cacheprovider",
                                           "--llmbench-confidence", "0.75", *args)
    batches = sorted((pytester.path / "llmbench_results").rglob("batch_results_*.json"), key=os.path.getmtime)
    batch = json.loads(batches[-1].read_text(encoding="utf-8"))
    report = (batches[-1].parent / "report.html").read_text(encoding="utf-8")
    return result, batch, report


def _report_data(html: str) -> dict[str, Any]:
    island = re.search(r'<script type="application/json" id="llmbench-data">(.*?)</script>', html, re.S)
    assert island is not None
    loaded: dict[str, Any] = json.loads(island.group(1))
    return loaded


def test_a_metric_declared_only_in_the_registry_reaches_statistics_slos_compare_and_the_report(
        pytester: pytest.Pytester, stub: OpenAIStub, package_copy: Any) -> None:
    result, batch, report = _session(pytester, stub, "--llmbench-slo", "answer_size_p50=3")
    # statistics and the terminal table
    aggregate = batch["aggregate"]
    assert aggregate["count_answer_size"] == 3 and aggregate["p50_answer_size"] == 6.0
    assert batch["categories"]["two"]["p50_answer_size"] == 6.0
    assert any(line.startswith("answer tok") for line in result.outlines)
    # a per-test SLO in the suite, and a run SLO, both in the metric's own unit and direction
    result.assert_outcomes(passed=2, failed=2)  # "small" missed its SLO; the run SLO is a failed gate
    result.stdout.fnmatch_lines(["*answer_size 6.0 tok > max_answer_size 2 tok*",
                                 "*run SLO answer_size_p50 <= 3 tok missed: measured 6.0 tok*"])
    # the report: headline, distribution, group tables and the table of every test
    assert ">answer size p50</div>" in report
    assert "<th>answer size p50</th>" in report
    assert '<th data-key="answer_size" class="num">answer tok</th>' in report
    data = _report_data(report)
    assert ["answer_size", "Answer size", "tok", "", "requests"] in data["distributions"]  # a histogram of requests
    assert ["answer_size", "answer tok"] in data["columns"]
    assert data["runs"][0]["tests"]["answer_size"] == [6, 6, 6]
    assert data["runs"][0]["percentiles"]["answer_size"]["p50"] == 6.0

    # a second run with longer answers, compared with the first: more tokens is worse for a lower-is-better metric
    first = next((pytester.path / "llmbench_results").rglob("batch_results_*.json"))
    stub.answers["France"] = "Paris is the capital of France, and its largest city by far."
    _, second, report = _session(pytester, stub, "--llmbench-compare", str(first))
    deltas = {d["name"]: d for d in second["gates"]["comparison"]["deltas"]}  # the default comparison
    assert deltas["mean_answer_size"]["baseline"] == 6.0 and deltas["mean_answer_size"]["current"] == 12.0
    assert re.search(r'<td>mean_answer_size</td><td>6\.0 tok</td><td>12\.0 tok</td><td class="worse">', report)
    _, third, _ = _session(pytester, stub, "--llmbench-compare", str(first), "--llmbench-compare-fail",
                           "answer_size_mean:10%")
    assert any("mean_answer_size" in r for r in third["gates"]["comparison"]["regressions"])

    # llmbench-report's side-by-side comparison of the two batches
    batches = sorted((pytester.path / "llmbench_results").rglob("batch_results_*.json"), key=os.path.getmtime)[:2]
    out = pytester.path / "compare.html"
    cli = subprocess.run([sys.executable, "-m", "pytest_llmbench.session.report_html.cli", *map(str, batches),
                          "-o", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 0, cli.stderr
    row = re.search(r"<tr><th>answer size p50</th>(.*?)</tr>", out.read_text(encoding="utf-8"), re.S)
    assert row is not None and 'class="delta worse"' in row.group(1)
