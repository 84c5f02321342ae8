"""The Responses API: "api": "responses" tests send input to /v1/responses, read whole answers and typed event
streams (TTFT at the first output delta, not the first event), continue conversations by previous_response_id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai_stub import write_suite
from pytest_httpserver import HTTPServer
from responses_stub import ResponsesStub
from run_files import batch_of, results_by_id

GAP = 0.3  # seconds the server waits after its first events before the first token


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_prompt_and_messages_tests_answer_through_responses(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                            stream: bool) -> None:
    server = ResponsesStub(first_gap=GAP)
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [
        {"id": "prompt", "api": "responses", "prompt": "hello there", "expected": {"contains": "turn 1: hello there"},
         "parameters": {"max_output_tokens": 20}},
        {"id": "chat", "api": "responses", "messages": [{"role": "user", "content": "hi"}],
         "expected": {"equals": "turn 1: hi"}},
    ])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=2)
    assert server.requests[0] == {"model": "responses-model", "input": "hello there", "max_output_tokens": 20,
                                  "stream": stream}
    assert server.requests[1]["input"] == [{"role": "user", "content": "hi"}]
    results = results_by_id(pytester.path / "llmbench_results")
    prompt = results["prompt"]
    assert prompt["api_type"] == "responses" and prompt["finish_reason"] == "completed"
    assert (prompt["prompt_tokens"], prompt["completion_tokens"], prompt["response_id"]) == (5, 4, "resp_1")
    if stream:
        # response.created and response.in_progress came at once; the first token GAP later: TTFT is the token's
        assert prompt["ttft"] >= GAP * 0.9 and len(prompt["itl"]) == 3 and not prompt["tokens_estimated"]
    assert batch_of(pytester.path / "llmbench_results")["apis"]["responses"]["total_tests"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_conversation_continues_by_previous_response_id(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                          stream: bool) -> None:
    server = ResponsesStub()
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [
        {"id": "talk", "api": "responses", "turns": ["first", {"content": "second", "expected": {
            "contains": "turn 2: second"}}, "third"], "expected": {"contains": "turn"}}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=1)
    assert [r.get("previous_response_id") for r in server.requests] == [None, "resp_1", "resp_2"]
    assert [r["input"] for r in server.requests] == [[{"role": "user", "content": word}]
                                                     for word in ("first", "second", "third")]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_function_calls_come_through_responses_too(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                   stream: bool) -> None:
    url = ResponsesStub(calls={"": ("get_weather", '{"city": "Paris"}')}).install(httpserver)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    suite = write_suite(pytester.path / "s.json", [
        {"id": "call", "api": "responses", "prompt": "weather?", "parameters": {"tools": [tool]},
         "expected": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=1)
    stored = results_by_id(pytester.path / "llmbench_results")["call"]
    assert stored["tool_calls"] == [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]


def test_a_failed_response_event_fails_the_test_with_the_servers_message(pytester: pytest.Pytester,
                                                                         httpserver: HTTPServer) -> None:
    url = ResponsesStub(fail=True).install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{"id": "t", "api": "responses", "prompt": "x"}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             "--llmbench-stream")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["*the server reported an error mid-stream: out of memory*"])


@pytest.mark.parametrize(("test", "message"), [
    ({"api": "chat", "prompt": "x"}, "api must be \"responses\""),
    ({"api": "responses", "query": "q", "documents": ["d"]}, "a rerank test has 'query' and 'documents' alone"),
])
def test_a_wrong_api_is_a_suite_error(pytester: pytest.Pytester, httpserver: HTTPServer, test: dict[str, Any],
                                      message: str) -> None:
    server = ResponsesStub()
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [test])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    assert run.ret != 0 and message in run.stdout.str() and server.requests == []


EXAMPLE = Path(__file__).resolve().parent.parent / "example_suites" / "responses.json"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_example_suite_passes_against_a_responses_server(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                             stream: bool) -> None:
    server = ResponsesStub(answers={"hello in French": "Bonjour !", "6 times 7": "42",
                                    "remember": "Nice to meet you, Ada.", "my name": "Your name is Ada."},
                           calls={"weather in Paris": ("get_weather", '{"city": "Paris"}')})
    url = server.install(httpserver)
    run = pytester.runpytest("--llmbench-endpoint", url, f"--llmbench-suite={EXAMPLE}", "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=4)
    assert [r["stream"] for r in server.requests] == [stream, True, stream, stream, stream, stream]
    assert [r.get("previous_response_id") for r in server.requests] == [None, None, None, "resp_3", None, "resp_5"]
    assert server.requests[5]["input"] == [{"type": "function_call_output", "call_id": "call_1",
                                            "output": '{"temp_c": 18, "sky": "clear"}'}]
    assert server.requests[4]["tools"][0]["name"] == "get_weather"  # the Responses API's own shape, as written
    batch = batch_of(pytester.path / "llmbench_results")
    assert list(batch["apis"]) == ["responses"]
    assert (batch["aggregate"]["total_tests"], batch["aggregate"]["total_requests"]) == (4, 6)
