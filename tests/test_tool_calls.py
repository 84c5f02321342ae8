"""Tool calls and structured outputs: the calls assembled from a real server's answers, checked against the
request's tool schemas and the test's expected calls; JSON answers validated, their validity pooled and gated."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from pytest_httpserver import HTTPServer
from run_files import batch_of, results_by_id
from tool_stub import ToolStub

from pytest_llmbench.http.tool_calls import ToolCallParts

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "required": ["location"],
    "properties": {"location": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}},
                   "unit": {"enum": ["c", "f"]}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}}}}
PARIS = '{"location": {"city": "Paris"}, "unit": "c"}'
CALLS = {
    "weather in Paris": [("get_weather", PARIS)],
    "two calls": [("get_time", '{"zone": "CET"}'), ("get_weather", '{"location": {"city": "Oslo"}}')],
    "bad schema": [("get_weather", '{"location": {"city": 5}}')],
    "not json": [("get_weather", '{"location": ')],
    "unoffered": [("get_stock", "{}")],
}
WANT_PARIS = [{"name": "get_weather", "arguments": {"location": {"city": "Paris"}}}]
BOTH = [{"name": "get_weather"}, {"name": "get_time"}]
TESTS: list[dict[str, Any]] = [
    {"id": "paris", "prompt": "weather in Paris", "expected": {"tool_calls": WANT_PARIS}},
    {"id": "any_order", "prompt": "two calls", "expected": {"tool_calls": BOTH, "tool_calls_order": "any"}},
    {"id": "given_order", "prompt": "two calls", "expected": {"tool_calls": BOTH}},
    {"id": "wrong_value", "prompt": "weather in Paris",
     "expected": {"tool_calls": [{"name": "get_weather", "arguments": {"location": {"city": "Lyon"}}}]}},
    {"id": "bad_schema", "prompt": "bad schema", "expected": {"tool_calls": [{"name": "get_weather"}]}},
    {"id": "not_json", "prompt": "not json", "expected": {"tool_calls": [{"name": "get_weather"}]}},
    {"id": "unoffered", "prompt": "unoffered", "expected": {"tool_calls": [{"name": "get_stock"}]}},
    {"id": "no_call_wanted", "prompt": "hello", "expected": {"tool_calls": []}},
    {"id": "call_missing", "prompt": "hello", "expected": {"tool_calls": WANT_PARIS}},
]


def chat_suite(where: Any, tests: list[dict[str, Any]], **parameters: Any) -> Any:
    chats = [{**{k: v for k, v in test.items() if k != "prompt"},
              "messages": [{"role": "user", "content": test["prompt"]}]} for test in tests]
    return write_suite(where, chats, defaults={"parameters": {"tools": [WEATHER, TIME], **parameters}})


def failed_checks(result: dict[str, Any]) -> dict[str, str]:
    return {f"{c['name']} {c['expected']}": c["detail"] for c in result["evaluation_result"]["checks"]
            if not c["passed"]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_calls_are_checked_by_name_schema_and_given_values(pytester: pytest.Pytester, httpserver: HTTPServer,
                                                           stream: bool) -> None:
    server = ToolStub(calls=CALLS)
    url = server.install(httpserver)
    suite = chat_suite(pytester.path / "s.json", TESTS, tool_choice="auto")
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                             *(["--llmbench-stream"] if stream else []))
    run.assert_outcomes(passed=3, failed=6)
    results = results_by_id(pytester.path / "llmbench_results")
    assert {name for name, r in results.items() if r["evaluation_result"]["passed"]} == {
        "paris", "any_order", "no_call_wanted"}
    paris = results["paris"]
    assert paris["tool_calls"] == [{"id": "call_0", "name": "get_weather", "arguments": PARIS}]
    assert paris["request"]["tools"] == [WEATHER, TIME] and paris["request"]["tool_choice"] == "auto"
    assert failed_checks(results["given_order"]) == {
        "tool_calls ['get_weather', 'get_time']": "called ['get_time', 'get_weather']"}
    assert failed_checks(results["wrong_value"]) == {
        "tool_arguments get_weather": '$.location.city: expected "Lyon", got "Paris"'}
    assert failed_checks(results["bad_schema"]) == {
        "tool_arguments get_weather": "do not fit the tool's schema: $.location.city: 5 is not of type 'string'"}
    [not_json] = failed_checks(results["not_json"]).values()
    assert not_json.startswith("the arguments are not JSON (")
    assert failed_checks(results["unoffered"]) == {
        "tool_arguments get_stock": "the request offered no function 'get_stock' (offered: get_time, get_weather)"}
    assert failed_checks(results["call_missing"]) == {
        "tool_calls ['get_weather']": 'the answer called no function; it said: "no tool needed"'}
    run.stdout.fnmatch_lines(["*tool_arguments 'get_weather': $.location.city: expected \"Lyon\", got \"Paris\"*"])


def test_interleaved_stream_fragments_join_per_index_as_the_openai_clients_do() -> None:
    parts = ToolCallParts()
    assert not parts and parts.calls() is None
    assert not parts.feed({"content": "x"}) and not parts.feed({"tool_calls": []})
    parts.feed({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "two", "arguments": ""}}]})
    parts.feed({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "one", "arguments": '{"a"'}}]})
    parts.feed({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}, {"index": 0, "function": {
        "arguments": ": 1}"}}]})
    assert parts.calls() == [{"id": "a", "name": "one", "arguments": '{"a": 1}'},
                             {"id": "b", "name": "two", "arguments": "{}"}]


@pytest.mark.parametrize(("tools", "expected", "message"), [
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}], WANT_PARIS,
     "parameters.tools: f: parameters is not a valid JSON Schema: 'objekt' is not valid under any of the given"),
    ([{"type": "function"}], WANT_PARIS, 'parameters.tools: each tool must be {"type": "function", "function": '),
    ([WEATHER], [{"name": "get_weather", "arguments": "Paris"}],
     "expected.tool_calls: call 1: arguments must be an object of the values to check"),
    ([WEATHER], [{"function": "get_weather"}], 'expected.tool_calls: call 1 must be an object with a non-empty "name"'),
])
def test_a_broken_tool_schema_or_expected_call_stops_the_suite_before_anything_is_sent(
        pytester: pytest.Pytester, httpserver: HTTPServer, tools: Any, expected: Any, message: str) -> None:
    server = ToolStub(calls=CALLS)
    url = server.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{"id": "t", "messages": [{"role": "user", "content": "x"}],
                                                    "parameters": {"tools": tools},
                                                    "expected": {"tool_calls": expected}}])
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    assert run.ret != 0
    assert "s.json" in run.stdout.str() and message in run.stdout.str()
    assert server.requests == []


def test_order_must_be_given_or_any() -> None:
    from pytest_llmbench.checks.expectations import expectation_problems

    assert expectation_problems({"tool_calls": [], "tool_calls_order": "set"}) == [
        "tool_calls_order: must be one of 'given', 'any', not 'set'"]


SCHEMA = {"type": "object", "required": ["city", "population"],
          "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}}}
STUB = {"answers": {"good city": '{"city": "Paris", "population": 2100000}',
                    "bad city": '{"city": "Paris", "population": "many"}'}}


def test_structured_output_validity_is_pooled_per_category_and_gated(pytester: pytest.Pytester,
                                                                     stub: OpenAIStub) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
    expect = {"json_schema": SCHEMA}
    suite = write_suite(pytester.path / "s.json", [
        {"id": "a1", "category": "a", "messages": [{"role": "user", "content": "good city"}], "expected": expect},
        {"id": "a2", "category": "a", "messages": [{"role": "user", "content": "good city"}], "expected": expect},
        {"id": "b1", "category": "b", "messages": [{"role": "user", "content": "good city"}], "expected": expect},
        {"id": "b2", "category": "b", "messages": [{"role": "user", "content": "bad city"}], "expected": expect},
        {"id": "plain", "category": "b", "messages": [{"role": "user", "content": "hi"}]},
    ], defaults={"parameters": {"response_format": response_format}})
    run = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "-p",
                             "no:cacheprovider", "--llmbench-slo", "schema_valid=0.99")
    run.stdout.fnmatch_lines(["answers: 75.0% passed their checks | * | structured output validity 75.0%",
                              "*gate FAILED: run SLO schema_valid >= 99% missed: measured 75.0%*"])
    assert stub.requests[0]["body"]["response_format"] == response_format
    batch = batch_of(pytester.path / "llmbench_results")
    assert batch["aggregate"]["schema_valid"] == 0.75
    assert batch["categories"]["a"]["schema_valid"] == 1.0 and batch["categories"]["b"]["schema_valid"] == 0.5
    rows = {row["test_id"]: row for row in batch["tests"]}
    assert (rows["b2"]["schema_valid"], rows["plain"]["schema_valid"]) == (False, None)
    b2 = results_by_id(pytester.path / "llmbench_results")["b2"]
    assert failed_checks(b2) == {f"json_schema {SCHEMA}": "$.population: 'many' is not of type 'integer'"}


EXAMPLES = Path(__file__).resolve().parent.parent / "example_suites"


def test_the_example_suites_run_and_pass_against_servers_that_answer_them(pytester: pytest.Pytester,
                                                                          httpserver: HTTPServer) -> None:
    server = ToolStub(calls={"Paris": [("get_weather", '{"city": "Paris", "unit": "celsius"}')],
                             "Tokyo": [("get_time", '{"zone": "Asia/Tokyo"}'), ("get_weather", '{"city": "Tokyo"}')]},
                      text="Bonjour")
    url = server.install(httpserver)
    run = pytester.runpytest("--llmbench-endpoint", url, "--llmbench-suite", str(EXAMPLES / "tool_calls.json"),
                             "--llmbench-stream", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=4)
    assert all(body["tools"] and body["tool_choice"] == "auto" for body in server.requests)
    assert server.requests[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_0",
                                                   "content": '{"temp_c": 18, "sky": "clear"}'}


@pytest.mark.parametrize("instance", [
    {"city": "Paris", "population": 2100000}, {"city": "Paris", "population": "many"}, {"city": 5}, [],
    {"city": "Paris", "population": -1}])
def test_the_fast_validator_changes_no_verdict_and_no_message(monkeypatch: pytest.MonkeyPatch,
                                                              instance: Any) -> None:
    from pytest_llmbench.checks import schema

    pytest.importorskip("jsonschema_rs")
    schema._fast_validator.cache_clear()
    fast = schema.schema_violation(SCHEMA, instance)
    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)  # makes `import jsonschema_rs` raise ImportError
    schema._fast_validator.cache_clear()
    assert schema._fast_validator(json.dumps(SCHEMA, sort_keys=True)) is None
    assert schema.schema_violation(SCHEMA, instance) == fast
    schema._fast_validator.cache_clear()
