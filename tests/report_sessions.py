"""Real sessions that write HTML reports, for the report tests (test_report_html.py, test_report_browser.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

# An answer and a test name that would run script if the report let them through as markup.
HOSTILE = ('</script><script>window.__pwned = 1; alert(1)</script>'
           '<img src=x onerror="window.__pwned = 2; alert(2)"> \u2028<!-- ]]>')
CATEGORIES = ("math", "geo", "code")


# The report tests' OpenAIStub: each report test module sets STUB = REPORT_STUB for conftest's ``stub``.
REPORT_STUB = {"answers": {"France": "Paris is the capital of France.", "hostile": HOSTILE}, "status": {"broken": 500},
        "token_gap": 0.001}


def report_suite(path: Path, passing: int = 9, hostile: bool = False) -> Path:
    """`passing` tests over three categories, one failing an answer check, one server error (500)."""
    tests: list[dict[str, Any]] = [{"id": f"q{n:02d}", "category": CATEGORIES[n % 3], "prompt": f"France, {n}?"}
                                   for n in range(passing)]
    tests.append({"id": "wrong", "prompt": "France again", "expected": {"contains": "Berlin"}})
    tests.append({"id": "broken", "prompt": "broken on purpose"})
    if hostile:
        tests.append({"id": "hostile", "name": HOSTILE, "category": HOSTILE, "prompt": "hostile",
                      "expected": {"contains": "never"}})
    return write_suite(path, tests)


def run_session(pytester: pytest.Pytester, stub: OpenAIStub, *args: str, suite: Path | None = None,
                hostile: bool = False) -> pytest.RunResult:
    suite = suite or report_suite(pytester.path / "suite.json", hostile=hostile)
    return pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--llmbench-stream",
                              "--llmbench-retries", "0", "-p", "no:cacheprovider", *args)


def results(pytester: pytest.Pytester) -> Path:
    return pytester.path / "llmbench_results"


def batch_file(pytester: pytest.Pytester) -> Path:
    (path,) = results(pytester).rglob("batch_results_*.json")
    return path


def report_file(pytester: pytest.Pytester) -> Path:
    """The session's default report: beside its batch file."""
    return batch_file(pytester).parent / "report.html"


def load_batch(pytester: pytest.Pytester) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(batch_file(pytester).read_text(encoding="utf-8"))
    return loaded
