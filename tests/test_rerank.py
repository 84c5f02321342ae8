"""Rerank tests: a query and documents sent to a real rerank server (vLLM's shape, or TEI's at the root), the
ranking read into one shape and checked (top, order, min_score), documents counted as the request's inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai_stub import write_suite
from pytest_httpserver import HTTPServer
from rerank_stub import RerankStub
from run_files import batch_of, results_by_id
from tool_stub import ToolStub

DOCUMENTS = ["Paris is the capital of France", "Berlin is in Germany", "the capital city of Italy is Rome"]
QUERY = "what is the capital of France"
TESTS: list[dict[str, Any]] = [
    {"id": "by_index", "query": QUERY, "documents": DOCUMENTS, "expected": {"top": 0, "min_score": 0.5}},
    {"id": "by_text", "query": QUERY, "documents": DOCUMENTS,
     "expected": {"top": "Paris is the capital of France", "order": [0, 2]}},
    {"id": "wrong_top", "query": QUERY, "documents": DOCUMENTS, "expected": {"top": 1}},
    {"id": "wrong_order", "query": QUERY, "documents": DOCUMENTS, "expected": {"order": [0, 1]}},
    {"id": "low_score", "query": QUERY, "documents": DOCUMENTS, "expected": {"min_score": 0.99}},
]
EXAMPLES = Path(__file__).resolve().parent.parent / "example_suites"


def failed(result: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in result["evaluation_result"]["checks"] if not c["passed"]}


@pytest.mark.parametrize("tei", [False, True], ids=["vllm", "tei"])
def test_rankings_are_read_from_either_shape_and_checked(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                         tei: bool) -> None:
    server = RerankStub(tei=tei)
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", TESTS, defaults={"parameters": {"top_n": 3}})
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    run.assert_outcomes(passed=2, failed=3)
    results = results_by_id(pytester.path / "llmbench_results")
    assert results["by_index"]["ranking"][0] == {"index": 0, "score": pytest.approx(5 / 6)}
    assert [item["index"] for item in results["by_index"]["ranking"]] == [0, 2, 1]
    assert results["by_index"]["api_type"] == "rerank" and results["by_index"]["input_count"] == 3
    assert failed(results["wrong_top"]) == {"top": "ranked first: 0 ('Paris is the capital of France')"}
    assert failed(results["wrong_order"]) == {
        "order": "ranked first: 0 ('Paris is the capital of France'), 2 ('the capital city of Italy is Rome')"}
    assert failed(results["low_score"]) == {"min_score": "the best document scored 0.8333333333333334"}
    # TEI: /v1/rerank answered 404 once, then every request went to /rerank at the root
    paths = [path for path, _ in server.requests]
    assert paths == (["/v1/rerank"] + ["/rerank"] * 5 if tei else ["/v1/rerank"] * 5)
    assert server.requests[-1][1] == {"model": "rerank-model", "query": QUERY, "documents": DOCUMENTS, "top_n": 3}
    batch = batch_of(pytester.path / "llmbench_results")
    assert batch["aggregate"]["mean_batch_size"] == 3 and batch["aggregate"]["count_inputs_per_second"] == 5


def test_a_rerank_path_option_sends_there_and_a_server_without_rerank_says_so(pytester: pytest.Pytester,
                                                                               httpserver: HTTPServer) -> None:
    server = RerankStub(tei=True)
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", TESTS[:1])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             "--llmbench-rerank-path", "/rerank")
    run.assert_outcomes(passed=1)
    assert [path for path, _ in server.requests] == ["/rerank"]
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             "--llmbench-rerank-path", "/v1/rerank")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["*404*does this server rerank? see --llmbench-rerank-path*"])


def test_an_index_past_the_documents_fails_the_request_clearly(pytester: pytest.Pytester,
                                                               httpserver: HTTPServer) -> None:
    url = RerankStub(bad_index=True).install(httpserver)
    suite = write_suite(pytester.path / "s.json", TESTS[:1])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["*results[[]0[]].index 3 names none of the 3 documents sent*"])


@pytest.mark.parametrize(("test", "message"), [
    ({"query": QUERY, "documents": DOCUMENTS, "prompt": "p"}, "has 'query' and 'documents' beside 'prompt'"),
    ({"query": QUERY}, "documents must be a list of 1 to 2048 non-empty strings, got null"),
    ({"query": "", "documents": DOCUMENTS}, "query must be a non-empty string"),
    ({"query": QUERY, "documents": DOCUMENTS, "expected": {"top": 7}}, "expected names document 7, which is not in"),
    ({"query": QUERY, "documents": DOCUMENTS, "expected": {"contains": "x"}},
     "expected.contains checks an answer's text; a rerank test checks its ranking (min_score, order, top)"),
    ({"prompt": "p", "expected": {"top": 0}}, "expected.top checks a rerank ranking; this test has no 'query' and "
                                              "'documents'"),
])
def test_a_broken_rerank_test_is_a_suite_error_before_anything_is_sent(
        pytester: pytest.Pytester, httpserver: HTTPServer, test: dict[str, Any], message: str) -> None:
    server = RerankStub()
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [test])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    assert run.ret != 0 and message in run.stdout.str() and "s.json" in run.stdout.str()
    assert server.requests == []


def test_the_example_suite_passes_against_a_rerank_server(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    url = RerankStub().install(httpserver)
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(EXAMPLES / "rerank.json"),
                             "-p", "no:cacheprovider")
    run.assert_outcomes(passed=3)


def test_the_batch_and_the_report_group_results_by_api(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    url = RerankStub().install(httpserver)
    ToolStub().install(httpserver)  # chat on the same server
    suite = write_suite(pytester.path / "s.json", [
        TESTS[0], TESTS[2], {"id": "hello", "messages": [{"role": "user", "content": "hi"}]}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    run.assert_outcomes(passed=2, failed=1)
    batch = batch_of(pytester.path / "llmbench_results")
    assert {name: (g["total_tests"], g["evaluation_pass_rate"]) for name, g in batch["apis"].items()} == {
        "chat": (1, None), "rerank": (2, 0.5)}
    assert [row["api_type"] for row in batch["tests"]] == ["rerank", "rerank", "chat"]
    [report] = (pytester.path / "llmbench_results").rglob("report.html")
    html = report.read_text(encoding="utf-8")
    assert "By api</h3>" in html and "<tr><th>rerank</th><td>2</td>" in html and "<tr><th>chat</th><td>1</td>" in html
