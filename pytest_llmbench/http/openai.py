"""The OpenAI request and response format: the body we send, where it goes, and reading a JSON answer into a
``TestResult``.

Kept apart from the HTTP code in client.py: building a body and reading an answer's text and token counts out of
a JSON body do not depend on how the bytes travel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..jsonbound import TooDeep, loads_bounded
from ..result import ApiError, TestResult, estimate_tokens
from .api_errors import bad_response, parse_error_body
from .reasoning import from_message
from .redact import NO_SECRETS, Secrets
from .tool_calls import from_message as tool_calls_of

PATHS = {"chat": "/chat/completions", "completions": "/completions", "responses": "/responses"}
MAX_USAGE_TOKENS = 10_000_000  # no prompt or answer is this long: a count past it is a broken or hostile server
TOKENS_PER_BYTE = 4  # an answer's tokens are at most this many per UTF-8 byte of its text (byte-level fallback)


def build_body(
    prompt: str | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    model: str | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The JSON body: parameters set to None are left out, unknown ones pass through to the server."""
    if (prompt is None) == (messages is None):
        raise ValueError("build_body needs exactly one of prompt and messages")
    body: dict[str, Any] = {"model": model} if model else {}
    if prompt is not None:
        body["prompt"] = prompt
    else:
        body["messages"] = [dict(message) for message in messages or ()]
    add_parameters(body, parameters)
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def add_parameters(body: dict[str, Any], parameters: Mapping[str, Any] | None) -> None:
    """A test's parameters into a request body of any API: None left out, the body's own keys and streaming (which
    the caller sets) kept as they are, unknown ones passed through to the server."""
    for key, value in (parameters or {}).items():
        if value is not None and key not in body and key not in ("stream", "stream_options"):
            body[key] = value


def prompt_as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its prompt sent as one user message, for an endpoint that only takes chat."""
    return {
        ("messages" if key == "prompt" else key): [{"role": "user", "content": value}] if key == "prompt" else value
        for key, value in body.items()
    }


def resolve_url(endpoint: str, api_type: str) -> tuple[str, str]:
    """(URL to POST to, API shape used): a URL ending in a shape's path fixes it, anything else is a base."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for fixed, suffix in PATHS.items():
        if path.endswith(suffix):
            return urlunsplit(parts._replace(path=path)), fixed
    return urlunsplit(parts._replace(path=path + PATHS[api_type])), api_type


def models_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for suffix in PATHS.values():
        if path.endswith(suffix):
            path = path.removesuffix(suffix)
            break
    return urlunsplit(parts._replace(path=path + "/models"))


def read_completion_body(result: TestResult, payload: bytes, secrets: Secrets = NO_SECRETS) -> ApiError | None:
    """Fill the result from a 2xx JSON body (text, usage, finish reason), or say why the body is no answer."""
    if not payload.strip():
        return bad_response("the response body is empty", payload, secrets)
    try:
        data = loads_bounded(payload)
    except TooDeep as exc:  # "[[[[...": no answer, never a crash
        return bad_response(f"the response body is {exc}", payload, secrets)
    except ValueError:
        return bad_response("the response body is not JSON", payload, secrets)
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        message = "the response has no choices"
        if isinstance(data, dict) and ("error" in data or data.get("object") == "error"):
            message += f": {parse_error_body(secrets.redact(payload.decode('utf-8', errors='replace')))[0]}"
        return bad_response(message, payload, secrets)
    choice = choices[0]
    if result.api_type == "chat":
        message_obj = choice.get("message")
        if not isinstance(message_obj, dict):
            return bad_response("choices[0] has no message", payload, secrets)
        text = message_obj.get("content")
        text = "" if text is None else text  # a reply of tool calls or reasoning alone has no content
    else:
        text = choice.get("text")
    if not isinstance(text, str):
        return bad_response("choices[0] has no text", payload, secrets)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    result.api_response, result.response_text, result.finish_reason = data, text, choice.get("finish_reason")
    if result.api_type == "chat" and isinstance(message_obj, dict):
        from_message(result, message_obj, reasoning_tokens(usage))
        result.tool_calls = tool_calls_of(message_obj)
    result.prompt_tokens = usage_count(usage.get("prompt_tokens"))
    result.completion_tokens = usage_count(usage.get("completion_tokens"))
    result.cached_tokens = cached_count(usage)
    return None


def fill_token_counts(result: TestResult, content_chunks: int | None = None, asked: int | None = None,
                      hidden: int = 0) -> None:
    """Estimate the completion count when the server did not report it or reported one it cannot mean, and flag it.

    Only the completion count is estimated: it is the one tokens/s, TPOT and the token checks use,
    and ``tokens_estimated`` says it is a guess. A prompt count the server did not report stays None.
    A stream is estimated at one token per chunk that carried text (llama.cpp's server and others send
    about one token a chunk and no usage); a whole answer at ``estimate_tokens`` of its text.
    A count past ``MAX_USAGE_TOKENS``, past the ``max_tokens`` asked for (``asked``) or past
    ``TOKENS_PER_BYTE`` per byte of the answer (reasoning text included, and the ``hidden`` reasoning tokens a
    server counts without sending their text, as OpenAI's reasoning models do) is dropped and ``usage_implausible``
    set: 10^30 tokens would otherwise pass any throughput SLO.
    """
    if result.prompt_tokens is not None and result.prompt_tokens > MAX_USAGE_TOKENS:
        result.prompt_tokens, result.usage_implausible = None, True
    hidden = hidden or reasoning_tokens(result.api_response.get("usage") if isinstance(result.api_response, dict)
                                        else None)
    if result.completion_tokens is not None and not _plausible(result, result.completion_tokens,
                                                               (content_chunks or 0) + hidden, asked):
        result.completion_tokens, result.usage_implausible = None, True
    if result.completion_tokens is None:
        result.completion_tokens = (estimate_tokens(result.response_text) if content_chunks is None
                                    else content_chunks)
        result.tokens_estimated = True


def _plausible(result: TestResult, count: int, allowance: int, asked: int | None) -> bool:
    """``allowance``: tokens beyond the text's own (a token a streamed chunk, reasoning tokens not sent)."""
    if count > MAX_USAGE_TOKENS or (asked is not None and count > asked):
        return False
    size = len(result.response_text.encode("utf-8", "replace")) + _reasoning_bytes(result.api_response)
    return count <= TOKENS_PER_BYTE * size + allowance + 16


def reasoning_tokens(usage: Any) -> int:
    """``usage.completion_tokens_details.reasoning_tokens``, or 0."""
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    count = usage_count(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    return count or 0


def _reasoning_bytes(data: Any) -> int:
    """The size of a whole chat answer's reasoning text, which its completion count covers but its text leaves out."""
    try:
        message = data["choices"][0]["message"]
        return sum(len(message[key].encode("utf-8", "replace")) for key in ("reasoning_content", "reasoning")
                   if isinstance(message.get(key), str))
    except (KeyError, IndexError, TypeError, AttributeError):
        return 0


def asked_tokens(request: Mapping[str, Any]) -> int | None:
    """The answer length a request asked for (``max_tokens``, or ``max_completion_tokens``), if any."""
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def cached_count(usage: Mapping[str, Any]) -> int | None:
    """The prompt tokens the server took from its prefix cache (``usage.prompt_tokens_details.cached_tokens``, as
    OpenAI, vLLM and SGLang send it); None when it does not say."""
    details = usage.get("prompt_tokens_details")
    return usage_count(details.get("cached_tokens")) if isinstance(details, Mapping) else None


def usage_count(value: Any) -> int | None:
    """A token count from a usage object, or None for anything that is not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def chat_endpoint(url: str) -> str:
    """Where the judge can chat: a session fixed on ``/completions`` (a base model) judges through the base URL."""
    stripped = url.rstrip("/")
    if stripped.endswith("/completions") and not stripped.endswith("/chat/completions"):
        return stripped[: -len("/completions")]
    return url
