from __future__ import annotations

import json

import pytest
from faultserver import CHAT, COMPLETION

from pytest_llmbench.http.exchange import (
    Exchange,
    fill_token_counts,
    parse_answer,
    result_from_exchange,
)
from pytest_llmbench.result import ApiError, Attempt, TestResult, estimate_tokens


def answered(api_type: str, data: object, request: dict | None = None) -> tuple[Exchange, ApiError | None]:
    exchange = Exchange(False, api_type, request or {"model": "m", "prompt": "x"})
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return exchange, parse_answer(exchange, payload)


def test_a_completion_gives_text_usage_and_finish_reason():
    exchange, error = answered("completions", COMPLETION)

    assert error is None
    assert (exchange.text, exchange.prompt_tokens, exchange.completion_tokens) == ("Paris", 5, 1)
    assert exchange.finish_reason == "stop" and exchange.data == COMPLETION


def test_a_chat_answer_is_the_message_content():
    exchange, error = answered("chat", CHAT)

    assert error is None
    assert (exchange.text, exchange.finish_reason) == ("Hello!", "length")


def test_chat_content_null_is_an_empty_answer_not_the_reasoning():
    data = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                 "reasoning_content": "Let me think"}}]}

    exchange, error = answered("chat", data)

    assert error is None and exchange.text == ""


@pytest.mark.parametrize(("api_type", "data", "message"), [
    ("completions", b"", "the response body is empty"),
    ("completions", b"  \n", "the response body is empty"),
    ("completions", b"<html>ok</html>", "the response body is not JSON"),
    ("completions", b'{"choices": [{"text": "cut sh', "the response body is not JSON"),
    ("completions", [1, 2], "the response has no choices"),
    ("completions", {"object": "text_completion"}, "the response has no choices"),
    ("completions", {"choices": []}, "the response has no choices"),
    ("completions", {"choices": ["Paris"]}, "the response has no choices"),
    ("completions", {"choices": [{"index": 0, "message": {"content": "chat-shaped"}}]}, "choices[0] has no text"),
    ("chat", {"choices": [{"index": 0, "text": "completion-shaped"}]}, "choices[0] has no message"),
    ("chat", {"choices": [{"index": 0, "message": {"content": 42}}]}, "choices[0] has no text"),
    ("completions", {"error": {"message": "engine died"}}, "the response has no choices: engine died"),
])
def test_a_200_without_an_answer_is_a_bad_response(api_type, data, message):
    exchange, error = answered(api_type, data)

    assert (error.kind, error.status, error.message) == ("bad_response", 200, message)
    assert exchange.text == ""


def test_bad_response_keeps_a_bounded_excerpt():
    _, error = answered("completions", b"x" * 5000)

    assert error.body_excerpt.startswith("xxx") and len(error.body_excerpt) <= 501


def test_reported_usage_is_not_estimated():
    exchange, _ = answered("completions", COMPLETION)

    fill_token_counts(exchange)

    assert (exchange.prompt_tokens, exchange.completion_tokens, exchange.tokens_estimated) == (5, 1, False)


def test_missing_usage_estimates_the_completion_count_only_and_flags_it():
    exchange, _ = answered("completions", {"choices": [{"text": "a rather longer answer text"}]},
                           {"model": "m", "prompt": "What is the question?"})

    fill_token_counts(exchange)

    assert exchange.tokens_estimated
    assert exchange.completion_tokens == estimate_tokens("a rather longer answer text")
    assert exchange.prompt_tokens is None


def test_a_reported_completion_count_without_a_prompt_count_is_not_an_estimate():
    exchange, _ = answered("chat", {"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}})

    fill_token_counts(exchange)

    assert (exchange.prompt_tokens, exchange.completion_tokens, exchange.tokens_estimated) == (None, 1, False)


def test_a_stream_is_estimated_at_one_token_per_text_chunk():
    exchange = Exchange(False, "chat", {"model": "m"}, text="a long answer of many characters in a few chunks")

    fill_token_counts(exchange, content_chunks=4)

    assert (exchange.completion_tokens, exchange.tokens_estimated) == (4, True)


@pytest.mark.parametrize("value", [None, "12", -1, True, 1.5])
def test_unusable_usage_figures_are_estimated(value):
    exchange, _ = answered("completions", {"choices": [{"text": "four words of text"}],
                                           "usage": {"prompt_tokens": 3, "completion_tokens": value}})

    fill_token_counts(exchange)

    assert exchange.completion_tokens == estimate_tokens("four words of text") and exchange.tokens_estimated


def test_result_from_exchange_names_the_test_and_takes_what_was_sent():
    request = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": False}
    exchange = Exchange(True, "chat", request, status=200, text="Hello!", prompt_tokens=9, completion_tokens=2,
                        execution_time=0.5, attempts=[Attempt(1, 200, elapsed_s=0.5)], finish_reason="stop")

    result = result_from_exchange(exchange, test_id="t1", test_name="Test one", category="geo",
                                  reasoning_type="recall", suite_id="s")

    assert (result.test_id, result.test_name, result.category, result.reasoning_type, result.suite_id) == (
        "t1", "Test one", "geo", "recall", "s")
    assert (result.model, result.api_type, result.request) == ("m", "chat", request)
    assert (result.success, result.response_text, result.attempts, result.error_message) == (True, "Hello!", 1, None)
    assert result.tokens_per_second == 4.0
    assert result.timestamp


def test_a_failed_exchange_gives_one_readable_line():
    exchange = Exchange(False, "completions", {"model": "m", "prompt": "x"}, status=503,
                        attempts=[Attempt(n, 503) for n in (1, 2, 3, 4)],
                        error=ApiError("http", "model overloaded", 503))

    result = result_from_exchange(exchange, test_id="t", test_name="t")

    assert result.error_message == "HTTP 503 (Service Unavailable): model overloaded — after 4 attempts"
    assert not result.success and result.tokens_per_second is None


def test_a_result_round_trips_through_json():
    exchange = Exchange(False, "completions", {"model": "m", "prompt": "x"}, status=429,
                        attempts=[Attempt(1, 429, "HTTP 429: slow", 0.1, 0.5), Attempt(2, 429, "HTTP 429: slow", 0.1)],
                        error=ApiError("http", "slow", 429, details={"code": "rate_limit"}))
    result = result_from_exchange(exchange, test_id="t", test_name="t")

    again = TestResult.from_dict(json.loads(result.to_json()))

    assert again == result
