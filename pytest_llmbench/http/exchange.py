"""What one logical request amounted to, and how it becomes a ``TestResult``.

Kept apart from the HTTP code in client.py: reading an answer's text and token counts out of a JSON
body, and filling the result record, do not depend on how the bytes arrived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..result import (
    ApiError,
    Attempt,
    TestResult,
    estimate_tokens,
    now_iso,
    tokens_per_second,
)
from .api_errors import bad_response, describe, parse_error_body


@dataclass
class Exchange:
    """One logical request as it went: the body actually sent, every attempt and the final answer."""

    success: bool
    api_type: str  # the shape actually sent, which the endpoint URL may have fixed
    request: dict[str, Any]
    status: int | None = None
    data: Any = None  # the parsed JSON answer (non-streaming)
    text: str = ""
    prompt_tokens: int | None = None  # as reported; None when the server did not say
    completion_tokens: int | None = None
    tokens_estimated: bool = False  # completion_tokens is an estimate (see fill_token_counts)
    finish_reason: str | None = None
    execution_time: float = 0.0  # the final attempt alone, request sent to the answer's last byte ([DONE] if streamed)
    attempts: list[Attempt] = field(default_factory=list)
    error: ApiError | None = None
    stream: bool = False
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    tpot: float | None = None
    e2e_latency: float | None = None


def result_from_exchange(
    exchange: Exchange,
    *,
    test_id: str,
    test_name: str,
    category: str | None = None,
    reasoning_type: str | None = None,
    suite_id: str | None = None,
) -> TestResult:
    """The TestResult of an exchange; model, API shape and body are the ones actually sent."""
    error_message = describe(exchange.error, len(exchange.attempts)) if exchange.error else None
    return TestResult(
        test_id=test_id,
        test_name=test_name,
        success=exchange.success,
        response_text=exchange.text,
        execution_time=exchange.execution_time,
        prompt_tokens=exchange.prompt_tokens,
        completion_tokens=exchange.completion_tokens,
        tokens_per_second=tokens_per_second(exchange.completion_tokens, exchange.execution_time),
        error_message=error_message,
        timestamp=now_iso(),
        api_response=exchange.data,
        reasoning_type=reasoning_type,
        model=exchange.request.get("model"),
        category=category,
        attempts=len(exchange.attempts),
        attempt_log=list(exchange.attempts),
        error=exchange.error,
        tokens_estimated=exchange.tokens_estimated,
        finish_reason=exchange.finish_reason,
        api_type=exchange.api_type,
        suite_id=suite_id,
        request=exchange.request,
        stream=exchange.stream,
        ttft=exchange.ttft,
        itl=list(exchange.itl),
        tpot=exchange.tpot,
        e2e_latency=exchange.e2e_latency,
    )


def parse_answer(exchange: Exchange, payload: bytes) -> ApiError | None:
    """Fill the exchange from a 2xx JSON body, or say why the body is no answer."""
    if not payload.strip():
        return bad_response("the response body is empty", payload)
    try:
        data = json.loads(payload)
    except ValueError:
        return bad_response("the response body is not JSON", payload)
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        message = "the response has no choices"
        if isinstance(data, dict) and ("error" in data or data.get("object") == "error"):
            message += f": {parse_error_body(payload.decode('utf-8', errors='replace'))[0]}"
        return bad_response(message, payload)
    choice = choices[0]
    if exchange.api_type == "chat":
        message_obj = choice.get("message")
        if not isinstance(message_obj, dict):
            return bad_response("choices[0] has no message", payload)
        text = message_obj.get("content")
        text = "" if text is None else text  # a reply of tool calls or reasoning alone has no content
    else:
        text = choice.get("text")
    if not isinstance(text, str):
        return bad_response("choices[0] has no text", payload)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    exchange.data, exchange.text, exchange.finish_reason = data, text, choice.get("finish_reason")
    exchange.prompt_tokens = usage_count(usage.get("prompt_tokens"))
    exchange.completion_tokens = usage_count(usage.get("completion_tokens"))
    return None


def fill_token_counts(exchange: Exchange, content_chunks: int | None = None) -> None:
    """Estimate the completion count when the server did not report it, and flag it.

    Only the completion count is estimated: it is the one tokens/s, TPOT and the token checks use,
    and ``tokens_estimated`` says it is a guess. A prompt count the server did not report stays None.
    A stream is estimated at one token per chunk that carried text (llama.cpp's server and others send
    about one token a chunk and no usage); a whole answer at ``estimate_tokens`` of its text.
    """
    if exchange.completion_tokens is None:
        exchange.completion_tokens = estimate_tokens(exchange.text) if content_chunks is None else content_chunks
        exchange.tokens_estimated = True


def usage_count(value: Any) -> int | None:
    """A token count from a usage object, or None for anything that is not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
