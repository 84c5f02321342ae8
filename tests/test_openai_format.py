from __future__ import annotations

import json
from typing import Any

import pytest
from faultserver import CHAT, COMPLETION

from pytest_llmbench.http.openai import fill_token_counts, read_completion_body
from pytest_llmbench.result import ApiError, Attempt, TestResult, estimate_tokens


def answered(api_type: str, data: object, request: dict[str, Any] | None = None) -> tuple[TestResult, ApiError | None]:
    result = TestResult(api_type=api_type, request=request or {"model": "m", "prompt": "x"})
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return result, read_completion_body(result, payload)


def test_a_completion_gives_text_usage_and_finish_reason() -> None:
    result, error = answered("completions", COMPLETION)

    assert error is None
    assert (result.response_text, result.prompt_tokens, result.completion_tokens) == ("Paris", 5, 1)
    assert result.finish_reason == "stop" and result.api_response == COMPLETION


def test_a_chat_answer_is_the_message_content() -> None:
    result, error = answered("chat", CHAT)

    assert error is None
    assert (result.response_text, result.finish_reason) == ("Hello!", "length")


def test_chat_content_null_is_an_empty_answer_not_the_reasoning() -> None:
    data = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                 "reasoning_content": "Let me think"}}]}

    result, error = answered("chat", data)

    assert error is None and result.response_text == ""


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
def test_a_200_without_an_answer_is_a_bad_response(api_type: Any, data: Any, message: Any) -> None:
    result, error = answered(api_type, data)

    assert error is not None
    assert (error.kind, error.status, error.message) == ("bad_response", 200, message)
    assert result.response_text == ""


def test_bad_response_keeps_a_bounded_excerpt() -> None:
    _, error = answered("completions", b"x" * 5000)

    assert error is not None
    assert error.body_excerpt is not None
    assert error.body_excerpt.startswith("xxx") and len(error.body_excerpt) <= 501


def test_reported_usage_is_not_estimated() -> None:
    result, _ = answered("completions", COMPLETION)

    fill_token_counts(result)

    assert (result.prompt_tokens, result.completion_tokens, result.tokens_estimated) == (5, 1, False)


def test_missing_usage_estimates_the_completion_count_only_and_flags_it() -> None:
    result, _ = answered("completions", {"choices": [{"text": "a rather longer answer text"}]},
                           {"model": "m", "prompt": "What is the question?"})

    fill_token_counts(result)

    assert result.tokens_estimated
    assert result.completion_tokens == estimate_tokens("a rather longer answer text")
    assert result.prompt_tokens is None


def test_a_reported_completion_count_without_a_prompt_count_is_not_an_estimate() -> None:
    result, _ = answered("chat", {"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}})

    fill_token_counts(result)

    assert (result.prompt_tokens, result.completion_tokens, result.tokens_estimated) == (None, 1, False)


def test_a_stream_is_estimated_at_one_token_per_text_chunk() -> None:
    result = TestResult(api_type="chat", request={"model": "m"},
                        response_text="a long answer of many characters in a few chunks")

    fill_token_counts(result, content_chunks=4)

    assert (result.completion_tokens, result.tokens_estimated) == (4, True)


@pytest.mark.parametrize("value", [None, "12", -1, True, 1.5])
def test_unusable_usage_figures_are_estimated(value: Any) -> None:
    result, _ = answered("completions", {"choices": [{"text": "four words of text"}],
                                           "usage": {"prompt_tokens": 3, "completion_tokens": value}})

    fill_token_counts(result)

    assert result.completion_tokens == estimate_tokens("four words of text") and result.tokens_estimated


def test_a_result_round_trips_through_json() -> None:
    result = TestResult(test_id="t", test_name="t", api_type="completions", request={"model": "m", "prompt": "x"},
                        attempts=2, attempt_log=[Attempt(1, 429, "HTTP 429: slow", 0.1, 0.5),
                                                 Attempt(2, 429, "HTTP 429: slow", 0.1)],
                        error=ApiError("http", "slow", 429, details={"code": "rate_limit"}), itl=[0.01, 0.02])

    again = TestResult.from_dict(json.loads(result.to_json()))

    assert again == result
