"""Scripted tool results (``tool_results``): after the first answer's calls pass their checks, a second request
carries the calls (with the server's ids) and one result each; the final answer is checked by the other checks.
Both requests are a conversation's turns: rows, files and counts of their own; a failure names its stage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai_stub import write_suite
from pytest_httpserver import HTTPServer
from responses_stub import ResponsesStub
from run_files import batch_of
from tool_stub import ToolStub

WEATHER_SCHEMA = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}}}}
PARIS = '{"city": "Paris"}'
CALLS = {"weather in Paris": [("get_weather", PARIS)],
         "two calls": [("get_time", '{"zone": "CET"}'), ("get_weather", '{"city": "Oslo"}')]}
TEMP = '{"temp": 18}'
SYSTEM = {"role": "system", "content": "You call tools."}


def chat(test_id: str, asked: str, results: list[dict[str, Any]], **expected: Any) -> dict[str, Any]:
    return {"id": test_id, "messages": [SYSTEM, {"role": "user", "content": asked}], "tool_results": results,
            **({"expected": expected} if expected else {})}


def weather(content: str = TEMP) -> dict[str, Any]:
    return {"name": "get_weather", "content": content}


TESTS = [
    chat("paris", "weather in Paris", [weather()], tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
         contains="18"),
    chat("two", "two calls", [weather("rain"), {"name": "get_time", "content": "09:00"}],
         tool_calls=[{"name": "get_weather"}, {"name": "get_time"}], tool_calls_order="any",
         contains="the tools said: 09:00; rain"),
    chat("final_wrong", "weather in Paris", [weather()], contains="sunny"),
    chat("calls_wrong", "weather in Paris", [weather()], contains="18",
         tool_calls=[{"name": "get_weather", "arguments": {"city": "Lyon"}}]),
    chat("no_call", "hello", [weather()], contains="18"),
    chat("unanswered", "two calls", [weather()], contains="rain"),
]


def by_test(server: ToolStub) -> dict[str, list[dict[str, Any]]]:
    """The server's recorded requests, by the user message that opened their conversation."""
    out: dict[str, list[dict[str, Any]]] = {}
    for body in server.requests:
        out.setdefault(body["messages"][1]["content"], []).append(body)
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_final_request_carries_the_calls_and_their_results(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                               stream: bool) -> None:
    server = ToolStub(calls=CALLS, id_prefix="srv_")
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", TESTS, defaults={"parameters": {"tools": [WEATHER, TIME]}})
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=2, failed=4)
    sent = by_test(server)
    first, final = sent["weather in Paris"][:2]  # paris's own two requests come first
    assert final["messages"] == [SYSTEM, {"role": "user", "content": "weather in Paris"}, {
        "role": "assistant", "content": None, "tool_calls": [{"id": "srv_0", "type": "function", "function": {
            "name": "get_weather", "arguments": PARIS}}]}, {"role": "tool", "tool_call_id": "srv_0", "content": TEMP}]
    assert final["tools"] == first["tools"] == [WEATHER, TIME] and final["stream"] is stream
    two = sent["two calls"][1]["messages"]  # each result answers its own call, in the order the calls came
    assert [(m["tool_call_id"], m["content"]) for m in two[3:]] == [("srv_0", "09:00"), ("srv_1", "rain")]
    # paris, two and final_wrong go on; calls_wrong fails its calls' checks, no_call and unanswered cannot be answered
    assert [len(requests) for requests in sent.values()] == [2 + 2 + 1, 2 + 1, 1]
    out = run.stdout.str()
    assert "final answer (request 2, after the tool results): 1 of 1 check failed: contains 'sunny'" in out
    assert "tool calls (request 1): 1 of 2 checks failed: tool_arguments 'get_weather'" in out
    assert "tool calls (request 1): 1 of 1 check failed: tool_results\n" in out
    assert 'tool_results: the answer called no function, so no tool result could be sent; it said: "no tool needed"' \
        in out
    assert "the answer called 'get_time', which no tool result answers (called ['get_time', 'get_weather'])" in out
    batch = batch_of(pytester.path / "llmbench_results")
    rows = [(row["test_id"], row["turn"], row["evaluation_passed"]) for row in batch["tests"]]
    assert rows == [("paris", 1, True), ("paris", 2, True), ("two", 1, True), ("two", 2, True),
                    ("final_wrong", 1, None), ("final_wrong", 2, False), ("calls_wrong", 1, False),
                    ("no_call", 1, False), ("unanswered", 1, False)]
    assert batch["aggregate"]["total_tests"] == 6 and batch["aggregate"]["total_requests"] == 9
    files = sorted(p.name for p in (pytester.path / "llmbench_results").rglob("Test_0*_result.json"))
    assert files == ["Test_0-turn1_result.json", "Test_0-turn2_result.json"]  # paris: its name, then its turn


def test_under_load_each_conversation_keeps_its_two_requests_in_order(pytester: pytest.Pytester,
                                                                      httpserver: HTTPServer) -> None:
    server = ToolStub(calls=CALLS)
    url = server.install(httpserver)
    tests = [chat(f"c{n}", "weather in Paris", [weather(f"{n} degrees")], contains=f"{n} degrees") for n in range(4)]
    suite = write_suite(pytester.path / "s.json", tests, defaults={"parameters": {"tools": [WEATHER]}})
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             "--llmbench-concurrency", "4", "--llmbench-stream")
    run.assert_outcomes(passed=4)
    finals = [body["messages"][-1]["content"] for body in server.requests if body["messages"][-1]["role"] == "tool"]
    assert sorted(finals) == [f"{n} degrees" for n in range(4)] and len(server.requests) == 8


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_responses_api_sends_function_call_outputs_after_the_previous_response(
        pytester: pytest.Pytester, httpserver: HTTPServer, stream: bool) -> None:
    server = ResponsesStub(calls={"": ("get_weather", PARIS)})
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{
        "id": "resp", "api": "responses", "messages": [{"role": "user", "content": "weather?"}],
        "parameters": {"tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]},
        "tool_results": [weather("18C")],
        "expected": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
                     "equals": "turn 2: 18C"}}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=1)
    first, final = server.requests
    assert first["input"] == [{"role": "user", "content": "weather?"}] and "previous_response_id" not in first
    assert final["previous_response_id"] == "resp_1"
    assert final["input"] == [{"type": "function_call_output", "call_id": "call_1", "output": "18C"}]


@pytest.mark.parametrize(("test", "message"), [
    ({"tool_results": [weather()]}, "tool_results needs parameters.tools: the functions the model may call"),
    ({"tool_results": [{"name": "get_wether", "content": "x"}], "parameters": {"tools": [WEATHER]}},
     "tool_results[0].name 'get_wether' is not a function parameters.tools offers (offered: get_weather)"),
    ({"tool_results": [{"name": "get_weather", "content": {"temp": 18}}], "parameters": {"tools": [WEATHER]}},
     "tool_results[0].content must be a string (what the function returned, e.g. JSON text), got object"),
    ({"tool_results": [{"name": "get_time", "content": "x"}], "parameters": {"tools": [WEATHER, TIME]},
      "expected": {"tool_calls": [{"name": "get_weather"}]}},
     "tool_results answers 1 call(s) of 'get_time' but expected.tool_calls asks for 0"),
    ({"tool_results": [weather()], "parameters": {"tools": [WEATHER]}, "turns": ["again"]},
     "tool_results continues a chat or Responses API test's 'messages' with the results of its calls"),
    ({"tool_results": {"get_weather": "x"}, "parameters": {"tools": [WEATHER]}},
     'tool_results must be a non-empty list of {"name": ..., "content": "..."}, got object'),
    ({"tool_results": [{"name": "get_weather", "content": "x", "id": "c1"}], "parameters": {"tools": [WEATHER]}},
     "unknown field 'tool_results[0].id'"),
])
def test_bad_tool_results_are_a_suite_error_naming_the_file_and_test(
        pytester: pytest.Pytester, httpserver: HTTPServer, test: dict[str, Any], message: str) -> None:
    server = ToolStub(calls=CALLS)
    url = server.install(httpserver)
    base = {"id": "weather_01", "messages": [{"role": "user", "content": "weather in Paris"}]}
    if "turns" in test:
        del base["messages"]
    suite = write_suite(pytester.path / "broken.json", [{**base, **test}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    assert run.ret != 0 and server.requests == []
    out = run.stdout.str()
    assert "broken.json" in out and "tests[0] (id 'weather_01'): " + message in out, out


def test_a_prompt_test_cannot_take_tool_results(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    url = ToolStub().install(httpserver)
    suite = pytester.path / "p.json"
    suite.write_text(json.dumps({"tests": [{"id": "p", "name": "n", "category": "c", "prompt": "weather?",
                                            "parameters": {"tools": [WEATHER]}, "tool_results": [weather()]}]}))
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    assert run.ret != 0 and "tests[0] (id 'p'): tool_results continues a chat" in run.stdout.str()


def test_results_answer_calls_of_their_name_in_order_and_calls_without_ids_get_their_own() -> None:
    from pytest_llmbench.checks.tool_calls import ToolResult, pair_results
    from pytest_llmbench.http.tool_calls import answered_calls

    called: list[dict[str, Any]] = [{"id": None, "name": "get_weather", "arguments": '{"city": "Oslo"}'},
              {"id": "b", "name": "get_time", "arguments": "{}"},
              {"id": None, "name": "get_weather", "arguments": '{"city": "Rome"}'}]
    results = (ToolResult("get_weather", "cold"), ToolResult("get_time", "noon"), ToolResult("get_weather", "warm"))
    pairs = pair_results(results, called, "")
    assert not isinstance(pairs, str)
    assert [(call["arguments"], result.content) for call, result in pairs] == [
        ('{"city": "Oslo"}', "cold"), ("{}", "noon"), ('{"city": "Rome"}', "warm")]
    made, answers = answered_calls("let me look", [(call, result.content) for call, result in pairs])
    assert [call["id"] for call in made[0]["tool_calls"]] == ["call_0", "b", "call_2"] and made[0]["content"] == \
        "let me look"
    assert [(m["tool_call_id"], m["content"]) for m in answers] == [("call_0", "cold"), ("b", "noon"),
                                                                    ("call_2", "warm")]
    assert pair_results(results[:2], called, "") == (
        "the answer called 'get_weather', which no tool result answers (called ['get_weather', 'get_time', "
        "'get_weather'])")
    assert pair_results((*results, ToolResult("get_time", "late")), called, "") == (
        "no call of 'get_time' for its tool result to answer (called ['get_weather', 'get_time', 'get_weather'])")
