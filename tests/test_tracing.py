"""W3C trace context on every request and the OpenTelemetry export of request and session spans."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from faultserver import CHAT, FaultServer, Reply, client_for, refusing_url
from openai_stub import write_suite
from run_files import batch_of, results_by_id
from timing_servers import client, serving

otlp_receiver = pytest.importorskip("otlp_receiver")  # needs the otel extra (in the test extra)
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


@pytest.fixture
def receiver() -> Iterator[Any]:
    found = otlp_receiver.OTLPReceiver()
    yield found
    found.close()


def sent_ids(server: Any) -> list[tuple[str, str]]:
    ids = []
    for request in server.received:
        match = TRACEPARENT.fullmatch(request["headers"]["traceparent"])
        assert match is not None, request["headers"]["traceparent"]
        ids.append((match[1], match[2]))
    return ids


def test_every_request_carries_a_traceparent_of_its_own_and_the_result_names_it() -> None:
    for server in serving("vllm"):
        with client(server.url) as llm:
            results = [llm.complete("p"), llm.chat([{"role": "user", "content": "hi"}], stream=True)]
    ids = sent_ids(server)
    assert [(r.trace_id, r.span_id) for r in results] == ids
    assert len({trace for trace, _ in ids}) == 2  # a trace of its own per request


def test_no_traceparent_when_turned_off_and_the_users_own_wins() -> None:
    users = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    for server in serving("vllm"):
        with client(server.url, traceparent=False) as llm:
            off = llm.complete("p")
        with client(server.url, headers={"TraceParent": users}) as llm:
            own = llm.complete("p")
    assert "traceparent" not in {name.lower() for name in server.received[0]["headers"]} and off.trace_id is None
    assert server.received[1]["headers"]["TraceParent"] == users  # sent unchanged, not a second header beside it
    assert (own.trace_id, own.span_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


def test_a_retried_request_keeps_its_trace() -> None:
    with FaultServer() as server:
        server.reply(Reply(503), Reply.json(CHAT))
        llm = client_for(server.url_for("/v1"))
        result = llm.chat([{"role": "user", "content": "hi"}])
        llm.close()
    headers = [r.headers["traceparent"] for r in server.received]
    assert result.attempts == 2 and headers[0] == headers[1] == f"00-{result.trace_id}-{result.span_id}-01"


def test_spans_reach_a_collector_as_parents_of_the_servers_spans_and_linked_to_the_session(pytester: pytest.Pytester, receiver: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{n}"} for n in range(3)])
    for server in serving("vllm"):
        result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                    "--llmbench-stream", "--llmbench-otlp", receiver.url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["tracing: 4 of 4 spans exported over OTLP (session trace *)"])
    [session] = receiver.named("llmbench session")
    requests = receiver.named("llmbench request")
    # The parent/child link: each request span is the span the server was told was its parent.
    assert sorted((s["trace_id"], s["span_id"]) for s in requests) == sorted(sent_ids(server))
    assert all(s["links"] == [(session["trace_id"], session["span_id"])] for s in requests)
    assert all("first token" in s["events"] and s["attributes"]["llmbench.outcome"] == "success" for s in requests)
    assert {s["attributes"]["llmbench.test_id"] for s in requests} == {"t0", "t1", "t2"}
    assert session["attributes"]["llmbench.requests"] == 3
    batch = batch_of(pytester.path / "llmbench_results")
    assert batch["tracing"]["dropped"] == 0 and batch["tracing"]["session_trace_id"] == session["trace_id"]
    assert sorted(row["trace_id"] for row in batch["tests"]) == sorted(s["trace_id"] for s in requests)
    assert results_by_id(pytester.path / "llmbench_results")["t0"]["trace_id"] in {s["trace_id"] for s in requests}


@pytest.mark.parametrize("collector", ["down", "stuck"])
def test_a_dead_or_stuck_collector_fails_nothing_and_its_spans_are_counted(pytester: pytest.Pytester, collector: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    with contextlib.ExitStack() as stack:
        if collector == "stuck":
            stuck = otlp_receiver.OTLPReceiver(hang=True)
            stack.callback(stuck.close)
            url = stuck.url
        else:
            url = stack.enter_context(refusing_url()) + "/v1/traces"
        for server in serving("vllm"):
            result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                        "--llmbench-otlp", url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*OpenTelemetry export: 3 of 3 spans did not reach the collector*"])
    result.stdout.fnmatch_lines(["tracing: 0 of 3 spans exported over OTLP, 3 dropped*"])
    assert batch_of(pytester.path / "llmbench_results")["tracing"]["dropped"] == 3


def test_no_traceparent_in_a_session_leaves_the_rows_without_trace_ids(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    for server in serving("vllm"):
        result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                    "--no-llmbench-traceparent", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert batch_of(pytester.path / "llmbench_results")["tests"][0]["trace_id"] is None
    assert "traceparent" not in {name.lower() for name in server.received[0]["headers"]}


def test_an_otlp_url_that_is_no_url_is_a_usage_error(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = pytester.runpytest("--llmbench-endpoint", "http://127.0.0.1:9/v1", "--llmbench-suite", str(suite),
                                "--llmbench-otlp", "collector:4318")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmbench-otlp: expected an OTLP/HTTP URL*"])
