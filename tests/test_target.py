"""The header line: what a run tests (endpoint and where it came from, model, server, suites, stream, workers)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai_stub import MODEL, OpenAIStub, write_suite
from pytest_httpserver import HTTPServer

from pytest_llmbench.session.target import Target


@pytest.fixture
def stub(httpserver: HTTPServer) -> OpenAIStub:
    server = OpenAIStub(owned_by="vllm")
    server.url = server.install(httpserver)
    return server


def batch(pytester: pytest.Pytester) -> dict[str, Any]:
    [path] = (pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_header_summary_and_batch_name_endpoint_model_server_suites_stream_and_workers(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--llmbench-stream",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    line = (f"llmbench: {stub.url} (from --llmbench-endpoint), vLLM | model {MODEL} (first of GET /v1/models)"
            " | suites s.json | stream on | 1 process")
    during = result.outlines[result.outlines.index("collected 1 item") + 1]
    assert during == line  # said before the first test ...
    summary = result.outlines[next(n for n, o in enumerate(result.outlines) if "llmbench summary" in o) + 1]
    assert summary == line  # ... and again at the end ...
    assert batch(pytester)["run"]["target"]["line"] == line  # ... and kept with the results
    assert batch(pytester)["run"]["target"]["server"] == "vLLM"


@pytest.mark.parametrize("variable", ["LLMBENCH_ENDPOINT", "OPENAI_BASE_URL"])
def test_endpoint_comes_from_the_environment_before_the_embedded_model(pytester: pytest.Pytester, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, variable: Any) -> None:
    monkeypatch.delenv("LLMBENCH_ENDPOINT", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv(variable, stub.url)
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"llmbench: {stub.url} (from {variable}), vLLM | *"])
    assert stub.requests


def test_llmbench_endpoint_wins_over_openai_base_url(pytester: pytest.Pytester, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_ENDPOINT", stub.url)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    pytester.runpytest("--llmbench-suite", str(suite), "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_model_the_server_does_not_list_is_warned_about_with_a_suggestion(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    stub = OpenAIStub(models=("ref-model",))
    url = stub.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", url,
                                "--llmbench-model", "ref-modle", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        "llmbench WARNING: model 'ref-modle' is not listed by GET /v1/models (it lists: *); "
        "did you mean 'ref-model'?"])
    result.stdout.fnmatch_lines(["*LLMBenchWarning: model 'ref-modle' is not listed*"])


def test_a_listed_model_gets_no_warning(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                "--llmbench-model", MODEL, "-p", "no:cacheprovider")
    assert "not listed" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"llmbench: * | model {MODEL} (--llmbench-model) | *"])


def test_the_embedded_fallback_says_so_plainly() -> None:
    target = Target(endpoint="http://127.0.0.1:5000/v1", endpoint_source="default", models=["gemma"],
                    model_source="first of GET /v1/models", server="embedded", embedded=True, suites=["q.json"])
    assert target.line().startswith("llmbench: EMBEDDED model server http://127.0.0.1:5000/v1 (no "
                                    "--llmbench-endpoint, LLMBENCH_ENDPOINT or OPENAI_BASE_URL set)")
