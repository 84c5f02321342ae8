"""The batch file's declared shape (pytest_llmbench/batch.py) and the JSON Schema shipped from it.

Every batch the test suite's sessions write is validated by tests/conftest.py; here: the shipped file is the
declaration's, it accepts a real session's batch and rejects broken ones, and the conftest check catches a writer
that drifts from it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from batch_schema import check_batches, problems
from openai_stub import OpenAIStub, write_suite

from pytest_llmbench.batch import SCHEMA_VERSION, json_schema
from pytest_llmbench.exceptions import BatchFileError
from pytest_llmbench.metrics.batch_file import read_batch

STUB = {"answers": {"France": "Paris is the capital of France."}}


def test_the_shipped_schema_is_the_declarations() -> None:
    shipped = json.loads(resources.files("pytest_llmbench").joinpath("batch_results.schema.json").read_text("utf-8"))
    assert shipped == json_schema(), "run: python -c 'import pytest_llmbench.batch as b; b.write_schema()'"
    assert shipped["$id"].endswith(f"/{SCHEMA_VERSION}")


def _session_batch(pytester: pytest.Pytester, stub: OpenAIStub, *args: str) -> dict[str, Any]:
    suite = write_suite(pytester.path / "suite.json", [{"id": "a", "prompt": "France?"},
                                                       {"id": "b", "prompt": "France!", "expected": {"contains": "x"}}])
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--llmbench-stream",
                       "-p", "no:cacheprovider", *args)
    (path,) = (pytester.path / "llmbench_results").rglob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_a_sessions_batch_matches_and_broken_ones_do_not(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    batch = _session_batch(pytester, stub, "--llmbench-slo", "latency_p99=60s")  # not arrival-timed: a busy
    # machine may mark token times, never a whole latency
    assert batch["schema_version"] == SCHEMA_VERSION and problems(batch) == []
    assert "failure" in batch["tests"][1] and batch["gates"]["passed"] is True
    cases: tuple[tuple[Callable[[dict[str, Any]], Any], str], ...] = (
                          (lambda b: b.pop("aggregate"), "$"),
                          (lambda b: b["tests"][0].update(ttft="fast"), "$.tests[0].ttft"),
                          (lambda b: b["tests"][0].update(passed=None), "$.tests[0].passed"),
                          (lambda b: b["aggregate"].update(p99_ttft_ms="1 s"), "$.aggregate.p99_ttft_ms"),
                          (lambda b: b["run"].update(workers="two"), "$.run.workers"))
    for breaks, where in cases:
        broken = copy.deepcopy(batch)
        breaks(broken)
        assert any(problem.startswith(where) for problem in problems(broken)), where


def test_the_conftest_check_fails_on_a_batch_its_writer_got_wrong(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """A hook that writes a text where a figure goes: the check every test runs at its end names the file."""
    pytester.makeconftest("""
        def pytest_llmbench_batch(batch):
            batch["tests"][0]["ttft"] = "fast"
    """)
    _session_batch(pytester, stub)
    with pytest.raises(AssertionError, match=r"batch_results_.*\.json does not match .*tests\[0\]\.ttft"):
        check_batches(pytester.path)
    (pytester.path / "conftest.py").unlink()
    for path in (pytester.path / "llmbench_results").rglob("batch_results_*.json"):
        path.unlink()  # leave nothing for this test's own end-of-test check


def test_reading_anothers_batch_checks_it_against_the_shipped_schema(pytester: pytest.Pytester,
                                                                       stub: OpenAIStub) -> None:
    """One schema, not two: ``read_batch`` (baselines, llmbench-report) rejects what the shipped one rejects, and
    takes a file of an older version that lacks later keys."""
    batch = _session_batch(pytester, stub)
    path = pytester.path / "other.json"
    cases: tuple[tuple[Callable[[dict[str, Any]], Any], str], ...] = (
        (lambda b: b["tests"][0].update(label=3), "tests[0].label: 3 is not a string"),
        (lambda b: b["run"].update(workers="two"), 'run.workers: "two" is not an integer'))
    for breaks, where in cases:
        broken = copy.deepcopy(batch)
        breaks(broken)
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(BatchFileError, match=re.escape(where)):
            read_batch(path)
    for row in batch["tests"]:
        del row["label"], row["trace_id"]
    path.write_text(json.dumps(batch), encoding="utf-8")
    assert read_batch(path)["tests"][0]["test_id"] == "a"
