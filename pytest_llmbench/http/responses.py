"""OpenAI's Responses API (``POST <base>/responses``): the body, a whole answer, and a stream's events.

A test opts in with ``"api": "responses"``; its prompt or messages go as ``input``. A whole answer lists ``output``
items (messages of ``output_text`` parts, ``reasoning``, ``function_call``); a stream sends typed events and no
``[DONE]``: ``response.output_text.delta`` carries the answer (TTFT is the first generated delta of any kind, as for
chat, not the first event), ``response.completed`` (or ``response.incomplete``) ends it with the usage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..result import ApiError, TestResult, estimate_tokens
from .api_errors import missing_answer, parse_answer
from .openai import add_parameters, usage_count
from .redact import NO_SECRETS, Secrets
from .tool_calls import ToolCallParts

RESPONSES = "responses"
_TEXT = "response.output_text.delta"
_REASONING = ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")
_ENDS = ("response.completed", "response.incomplete")
_FAILS = ("response.failed", "error")


class Streamed(Protocol):
    """What a stream's events fill (sse.StreamOutcome)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int
    finish_reason: str | None
    done: bool
    tool_calls: ToolCallParts
    response_id: str | None
    error: ApiError | None

    def failure(self, kind: str, message: str) -> ApiError: ...


def responses_body(prompt: str | None, messages: Sequence[Mapping[str, Any]] | None,
                   parameters: Mapping[str, Any] | None, model: str | None, stream: bool) -> dict[str, Any]:
    """``input`` is the prompt text or the messages; parameters pass through (``max_output_tokens``,
    ``previous_response_id``, ``tools``, ``text``...)."""
    body: dict[str, Any] = {"model": model} if model else {}
    body["input"] = prompt if prompt is not None else [dict(message) for message in messages or ()]
    add_parameters(body, parameters)
    body["stream"] = stream
    return body


def read_responses_body(result: TestResult, payload: bytes, secrets: Secrets = NO_SECRETS) -> ApiError | None:
    """Fill the result from a whole answer: its text, thinking, function calls, status and usage."""
    data, broken = parse_answer(payload, secrets)
    if broken is not None:
        return broken
    output = data.get("output") if isinstance(data, dict) else None
    if not isinstance(output, list):
        return missing_answer("the response has no output (a list of output items)", data, payload, secrets)
    texts: list[str] = []
    thinking: list[str] = []
    calls = ToolCallParts()
    for position, item in enumerate(entry for entry in output if isinstance(entry, dict)):
        parts = item.get("content") if isinstance(item.get("content"), list) else item.get("summary")
        for part in parts if isinstance(parts, list) else ():
            text = part.get("text") if isinstance(part, dict) else None
            (texts if item.get("type") == "message" else thinking).append(text if isinstance(text, str) else "")
        if item.get("type") == "function_call":
            calls.feed({"tool_calls": [{"index": position, "id": item.get("call_id"), "function": item}]})
    result.api_response, result.response_text, result.reasoning_text = data, "".join(texts), "".join(thinking)
    result.tool_calls, result.finish_reason = calls.calls(), _status(data)
    result.response_id = data.get("id") if isinstance(data.get("id"), str) else None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    result.prompt_tokens, result.completion_tokens = _counts(usage)
    result.reasoning_tokens = _reasoning_count(usage) or estimate_tokens(result.reasoning_text) or None
    return None


def responses_event(outcome: Streamed, chunk: dict[str, Any]) -> tuple[str, str, bool]:
    """Take one event: (answer text, thinking text, whether it carried a function call's piece)."""
    kind, delta = chunk.get("type"), chunk.get("delta")
    delta = delta if isinstance(delta, str) else ""
    if kind == _TEXT:
        return delta, "", False
    if kind in _REASONING:
        return "", delta, False
    item = _object(chunk, "item")
    index = chunk.get("output_index", 0)
    if kind == "response.output_item.added" and item.get("type") == "function_call":
        piece = {"index": index, "id": item.get("call_id"), "function": {"name": item.get("name"), "arguments": ""}}
        return "", "", outcome.tool_calls.feed({"tool_calls": [piece]})
    if kind == "response.function_call_arguments.delta":
        return "", "", outcome.tool_calls.feed({"tool_calls": [{"index": index, "function": {"arguments": delta}}]})
    response = _object(chunk, "response")
    if kind in _ENDS:
        usage = _object(response, "usage")
        outcome.prompt_tokens, outcome.completion_tokens = _counts(usage)
        outcome.reasoning_tokens = _reasoning_count(usage)
        outcome.finish_reason, outcome.done = _status(response), True
        outcome.response_id = response.get("id") if isinstance(response.get("id"), str) else None
    elif kind in _FAILS:
        error = _object(response, "error") or chunk
        message = error.get("message") if isinstance(error.get("message"), str) else str(kind)
        outcome.error = outcome.failure("stream", f"the server reported an error mid-stream: {message}")
    return "", "", False


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _status(response: Mapping[str, Any]) -> str | None:
    """The finish reason: ``completed``, or why it is incomplete (``max_output_tokens``)."""
    details = response.get("incomplete_details")
    if isinstance(details, dict) and isinstance(details.get("reason"), str):
        return str(details["reason"])
    return response.get("status") if isinstance(response.get("status"), str) else None


def _counts(usage: Mapping[str, Any]) -> tuple[int | None, int | None]:
    return usage_count(usage.get("input_tokens")), usage_count(usage.get("output_tokens"))


def _reasoning_count(usage: Mapping[str, Any]) -> int:
    details = usage.get("output_tokens_details")
    return (usage_count(details.get("reasoning_tokens")) or 0) if isinstance(details, dict) else 0
