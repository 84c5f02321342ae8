"""Reasoning-aware latency: TTFT counts any generated token, TTFOT the answer's first; thinking kept apart."""

from __future__ import annotations

from typing import Any

import pytest
from faultserver import FaultServer, Reply, client_for
from openai_stub import write_suite
from run_files import batch_of, results_by_id
from timing_servers import serving

from pytest_llmbench.checks.evaluate import evaluate
from pytest_llmbench.checks.expectations import expectation_problems
from pytest_llmbench.result import estimate_tokens

ANSWER = "w0 w1 w2 w3 w4"


def chat(url: str, stream: bool) -> Any:
    llm = client_for(url, model="timing-model", retries=0)
    try:
        return llm.chat([{"role": "user", "content": "think"}], stream=stream)
    finally:
        llm.close()


def test_a_reasoning_stream_separates_first_token_from_first_answer_token() -> None:
    for server in serving("vllm", reasoning_s=0.3, prefill_s=0.0):
        result = chat(server.url, stream=True)
    [truth] = server.truth
    assert result.success and result.response_text == ANSWER  # the answer alone
    assert result.reasoning_text.startswith("thinking ") and "w0" not in result.reasoning_text
    assert result.reasoning_tokens == result.reasoning_text.count("thinking")  # no usage detail: counted
    # The server's own split, measured on its clock: the first answer token came this long after the first token.
    assert result.ttfot - result.ttft == pytest.approx(truth["answer_after_first"], abs=0.05)
    assert result.ttfot > result.ttft + 0.2
    assert 0 < result.time_to_second_token < result.ttfot - result.ttft  # the second chunk is still thinking


def test_the_servers_reasoning_count_wins_and_a_whole_answer_keeps_its_thinking_apart() -> None:
    for server in serving("vllm", reasoning_s=0.05, prefill_s=0.0, reasoning_usage=42):
        streamed = chat(server.url, stream=True)
        whole = chat(server.url, stream=False)
    assert streamed.reasoning_tokens == whole.reasoning_tokens == 42  # usage.completion_tokens_details, not counted
    assert whole.response_text == ANSWER and whole.reasoning_text.startswith("thinking ")
    assert whole.ttfot is None and whole.time_to_second_token is None  # not streamed: no token times
    for server in serving("vllm", reasoning_s=0.05, prefill_s=0.0):
        estimated = chat(server.url, stream=False)
    assert estimated.reasoning_tokens == estimate_tokens(estimated.reasoning_text)  # no usage detail: estimated


def test_a_role_only_chunk_is_no_token_and_a_tool_call_fragment_is_one() -> None:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    tool = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]},
                         "finish_reason": None}]}
    text = {"choices": [{"index": 0, "delta": {"content": "done"}, "finish_reason": "stop"}]}
    with FaultServer() as server:
        server.reply(Reply.sse([role, tool, text], gap=0.15))
        result = chat(server.url_for("/v1"), stream=True)
    # Each event leaves 0.15 s after the one before: the role chunk at 0.15 s would make TTFT ~0.15 s.
    assert result.ttft >= 0.25 and result.ttfot - result.ttft >= 0.1
    assert result.response_text == "done" and result.reasoning_tokens is None


def test_checks_read_the_answer_and_expected_reasoning_reads_the_thinking() -> None:
    ok = evaluate({"contains": "w0", "not_contains": "thinking", "reasoning": {"contains": "thinking"}}, ANSWER,
                  5, reasoning_text="thinking thinking ")
    assert ok.passed
    failed = evaluate({"reasoning": {"contains": "because", "min_length": 3}}, ANSWER, 5,
                      reasoning_text="thinking ")
    assert [(c.name, c.passed) for c in failed.checks] == [("reasoning.contains", False),
                                                           ("reasoning.min_length", True)]
    assert failed.checks[0].detail == 'not found in reasoning: "thinking "'
    none = evaluate({"reasoning": {"contains": "x"}}, ANSWER, 5)
    assert not none.passed and "no reasoning text" in none.checks[0].detail


@pytest.mark.parametrize(("block", "problem"), [
    ([], "reasoning: must be a non-empty object of checks on the reasoning text"),
    ({"min_tokens": 3}, "reasoning: 'min_tokens' does not check reasoning text"),
    ({"regex": "("}, "reasoning: regex: pattern '(' does not compile"),
])
def test_a_reasoning_block_that_cannot_check_anything_is_named(block: Any, problem: Any) -> None:
    [found] = expectation_problems({"reasoning": block})
    assert found.startswith(problem)


def test_a_session_pools_ttfot_ttst_and_reasoning_tokens_and_checks_the_thinking(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "good", "messages": [{"role": "user", "content": "a"}],
         "expected": {"contains": "w4", "reasoning": {"contains": "thinking"}}},
        {"id": "thinking_is_no_answer", "messages": [{"role": "user", "content": "b"}],
         "expected": {"contains": "thinking"}},
    ])
    for server in serving("vllm", reasoning_s=0.05, prefill_s=0.0):
        result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                    "--llmbench-stream", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*TTFOT ms*", "*TTST ms*", "*reasoning tok*"])
    aggregate = batch_of(pytester.path / "llmbench_results")["aggregate"]
    # a result the client could not time (a busy machine: tokens read together) leaves its times out, not its tokens
    timed = 2 - aggregate["timing_degraded_requests"]
    assert aggregate["count_ttfot"] == aggregate["count_ttst"] == timed and aggregate["count_reasoning_tokens"] == 2
    assert timed == 0 or aggregate["p50_ttfot_ms"] > aggregate["p50_ttft_ms"]
    stored = results_by_id(pytester.path / "llmbench_results")["good"]
    assert stored["response_text"] == ANSWER and stored["reasoning_text"].startswith("thinking")
    assert [c["name"] for c in stored["evaluation_result"]["checks"]] == ["contains", "reasoning.contains"]
