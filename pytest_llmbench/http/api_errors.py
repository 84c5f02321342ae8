"""Every way a request can fail, turned into one ``ApiError`` a person can read.

Servers disagree on error bodies: OpenAI, llama.cpp and vLLM >= 0.10.1 send ``{"error": {...}}``,
older vLLM a top-level ``{"object": "error", ...}``, FastAPI ``{"detail": ...}``, proxies an HTML
page, and a dying server half a JSON document or nothing. Network failures arrive as a chain of
requests/urllib3/socket exceptions whose outer text is mostly noise. Both are normalized here.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
import ssl
import string
from collections.abc import Iterator
from http import HTTPStatus
from http.client import RemoteDisconnected
from typing import Any

import requests
import urllib3

from ..jsonbound import TooDeep, loads_bounded
from ..result import ApiError
from .redact import NO_SECRETS, Secrets

EXCERPT_LIMIT = 500
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error body worth reading: the message is near the start
MESSAGE_LIMIT = 1000  # characters of a server's message kept in an error
_LINE_LIMIT = 200
CUT = "cut"  # ApiError.type of a body that broke off after the headers: the request had reached the server
SENT_RESET = "reset_after_send"  # ApiError.type of a reset after the whole request was written: it may have run

# What a read of a response body can raise: urllib3 wraps most socket and http.client failures, not all.
BODY_READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)

_HTML = re.compile(r"<!doctype\s+html|<html|<title|<body", re.IGNORECASE)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # keeps every index in place
_MESSAGE_FIELD = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)')  # no closing quote: the body may be cut
_NUMBER = r"(\d[\d,]*)"
_FIGURES = (
    ("max_context_tokens", re.compile(rf"maximum context length is {_NUMBER}", re.IGNORECASE)),
    ("requested_tokens", re.compile(rf"(?:you requested|request has) {_NUMBER}", re.IGNORECASE)),
    ("message_tokens", re.compile(rf"{_NUMBER} (?:tokens )?in the messages", re.IGNORECASE)),
    ("completion_tokens", re.compile(rf"{_NUMBER} (?:tokens )?in the completion", re.IGNORECASE)),
)
_LLAMA_CPP_FIGURES = {"n_ctx": "max_context_tokens", "n_prompt_tokens": "requested_tokens"}
_STANDARD_FIELDS = frozenset({"message", "type", "object"})


def clip(text: str | None, limit: int = EXCERPT_LIMIT) -> str | None:
    """The text cut to ``limit`` characters with an ellipsis; None for no text."""
    if not text:
        return None
    return text if len(text) <= limit else text[:limit] + "…"


def size_text(size: int) -> str:
    """32 MiB, 64 KiB or 1000 bytes: as the option was most likely written."""
    for unit, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size:,} bytes"


def http_error(status: int, body: bytes, secrets: Secrets = NO_SECRETS) -> ApiError:
    """The error a non-2xx answer stands for; 401 and 403 become kind "auth".

    Only the first ``ERROR_BODY_LIMIT`` bytes are looked at, and the message is kept to
    ``MESSAGE_LIMIT`` characters: an error page can be any size, an error line should not be.
    Secrets are masked in the whole text before anything is cut from it.
    """
    text = secrets.redact(body[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace"))
    if len(body) >= ERROR_BODY_LIMIT:  # the read limit cut it: a key may end there half-way
        text = secrets.mask_edge(text)
    message, type_, details = parse_error_body(text)
    for name, value in context_figures(message, details).items():
        details.setdefault(name, value)
    kind = "http"
    if status in (401, 403):
        kind = "auth"
        message = f"authentication failed: {message}"
    return ApiError(kind, message, status, type_, clip(text), details)


def bad_response(message: str, body: bytes, secrets: Secrets = NO_SECRETS) -> ApiError:
    """A 200 that carries no usable answer: the request worked, the reply is unusable."""
    head = body[:EXCERPT_LIMIT * 4].decode("utf-8", "replace")  # more than the excerpt: a key may straddle it
    return ApiError("bad_response", message, 200, None, secrets.clip(head, EXCERPT_LIMIT))


def parse_answer(payload: bytes, secrets: Secrets = NO_SECRETS) -> tuple[Any, ApiError | None]:
    """A 2xx body parsed within the nesting limit, or the bad response saying why it is no JSON."""
    try:
        return loads_bounded(payload), None
    except TooDeep as exc:  # "[[[[...": no answer, never a crash
        return None, bad_response(f"the response body is {exc}", payload, secrets)
    except ValueError:
        return None, bad_response("the response body is not JSON", payload, secrets)


def missing_answer(message: str, data: Any, payload: bytes, secrets: Secrets = NO_SECRETS) -> ApiError:
    """A 2xx body without the answer's list: the server's own error message when it sent one (some send errors
    with status 200)."""
    if isinstance(data, dict) and ("error" in data or data.get("object") == "error"):
        message += f": {parse_error_body(secrets.redact(payload.decode('utf-8', errors='replace')))[0]}"
    return bad_response(message, payload, secrets)


def parse_error_body(text: str) -> tuple[str, str | None, dict[str, Any]]:
    """(message, error type, details) from an error body of any known shape, or a readable stand-in.

    Text values are kept to ``MESSAGE_LIMIT`` characters.
    """
    message, type_, details = _parse_error_body(text)
    clipped = {key: clip(value, MESSAGE_LIMIT) if isinstance(value, str) else value for key, value in details.items()}
    return clip(message, MESSAGE_LIMIT) or "", type_, clipped


def _parse_error_body(text: str) -> tuple[str, str | None, dict[str, Any]]:
    stripped = text.strip()
    if not stripped:
        return "empty response body", None, {}
    try:
        data = loads_bounded(stripped)
    except ValueError:
        return _unparsed_message(stripped), None, {}
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict):
            return _from_error_object(inner)
        if isinstance(inner, str) and inner:
            return inner, None, {}
        if data.get("object") == "error" or isinstance(data.get("message"), str):
            return _from_error_object(data)
        if data.get("detail"):
            return _detail_message(data["detail"]), None, {}
    return f"unexpected error body: {clip(stripped, _LINE_LIMIT)}", None, {}


def context_figures(message: str, details: dict[str, Any]) -> dict[str, int]:
    """Token figures of a context-length error, from the message text and llama.cpp's own fields."""
    found = {}
    for name, pattern in _FIGURES:
        match = pattern.search(message)
        if match:
            found[name] = int(match.group(1).replace(",", ""))
    for field_name, name in _LLAMA_CPP_FIGURES.items():
        if isinstance(details.get(field_name), int):
            found.setdefault(name, details[field_name])
    return found


def network_error(exc: BaseException, target: str) -> ApiError:
    """A request that got no HTTP answer; ``type`` says why, which decides whether to retry."""
    chain = list(_exception_chain(exc))
    innermost = _innermost_text(chain)
    if _has(chain, ssl.SSLError, requests.exceptions.SSLError):
        return ApiError("connection", f"TLS failure talking to {target}: {innermost}", type="tls")
    if _has(chain, socket.gaierror):
        return ApiError("connection", f"cannot resolve the host of {target} (DNS failure)", type="dns")
    if _has(chain, requests.exceptions.ConnectTimeout, socket.timeout):
        return ApiError("connection", f"timed out connecting to {target}", type="connect_timeout")
    if _has(chain, ConnectionRefusedError):
        return ApiError("connection", f"connection refused by {target}", type="refused")
    if _has(chain, ConnectionResetError, RemoteDisconnected, BrokenPipeError):
        return ApiError("connection", f"{target} closed the connection without answering", type="reset")
    return ApiError("connection", f"cannot talk to {target}: {innermost}", type="other")


def broken_body(exc: BaseException, status: int) -> ApiError:
    """The server answered but the connection broke before the body was complete."""
    reason = _innermost_text(list(_exception_chain(exc)))
    return ApiError("connection", f"the connection broke off while reading the response ({reason})", status,
                    type=CUT)


def describe(error: ApiError, attempts: int = 1) -> str:
    """One readable line: ``HTTP 503 (Service Unavailable): model overloaded — after 4 attempts``."""
    line = error.message
    if error.status is not None:
        line = f"HTTP {error.status} ({_phrase(error.status)}): {line}"
    if attempts > 1:
        line += f" — after {attempts} attempts"
    return line


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _from_error_object(obj: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    message = obj.get("message")
    if not isinstance(message, str):
        message = "no message" if message is None else json.dumps(message)
    type_ = obj.get("type") if isinstance(obj.get("type"), str) else None
    details = {
        key: value
        for key, value in obj.items()
        if key not in _STANDARD_FIELDS and isinstance(value, (str, int, float, bool))
    }
    return message, type_, details


def _detail_message(detail: Any) -> str:
    """FastAPI's ``detail``: a string, or a list of validation errors each with a ``msg``."""
    if isinstance(detail, list):
        parts = [str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail]
        return "; ".join(parts)
    return str(detail)


def _unparsed_message(text: str) -> str:
    """A message from a body that is not JSON: an HTML page, a cut-off JSON document or plain text."""
    if _HTML.search(text):
        return clip(_page_words(text), _LINE_LIMIT) or "an HTML page without text"
    field_match = _MESSAGE_FIELD.search(text)
    if field_match:
        try:
            message = json.loads(f'"{field_match.group(1)}"')
        except ValueError:
            message = field_match.group(1)
        return f"{message} (from a truncated or invalid JSON body)"
    first_line = next(line.strip() for line in text.splitlines() if line.strip())
    if text.startswith(("{", "[")):
        return f"truncated or invalid JSON body: {clip(first_line, _LINE_LIMIT)}"
    return clip(first_line, _LINE_LIMIT) or ""


def _page_words(page: str) -> str:
    """An HTML page's title, else its text outside tags, scripts and styles.

    Plain ``find`` calls that only move forward: regular expressions with lazy or back-referenced
    groups take quadratic time on a hostile page (many unclosed ``<title`` or ``<script`` tags).
    """
    lower = page.translate(_ASCII_LOWER)
    start = lower.find("<title")
    opened = lower.find(">", start) + 1 if start >= 0 else 0
    end = lower.find("</title", opened) if opened else -1
    title = _text_between(page, lower, opened, end) if end >= 0 else ""
    return title or _text_between(page, lower, 0, len(page))


def _text_between(page: str, lower: str, start: int, end: int) -> str:
    parts = []
    position = start
    while position < end:
        tag = lower.find("<", position, end)
        if tag < 0:
            tag = end
        parts.append(page[position:tag])
        if tag == end:
            break
        for name in ("<script", "<style"):
            if lower.startswith(name, tag):
                closing = lower.find("</" + name[1:], tag, end)
                tag = end if closing < 0 else closing
                break
        closed = lower.find(">", tag, end)
        position = end if closed < 0 else closed + 1
    return " ".join(html.unescape(" ".join(parts)).split())


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it: causes, contexts, wrapped args and urllib3's ``reason``."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending += [item for item in linked if isinstance(item, BaseException)]


def _innermost_text(chain: list[BaseException]) -> str:
    """The text of the deepest cause: the wrappers around it only repeat it with more noise."""
    return str(chain[-1]) or type(chain[-1]).__name__


def _has(chain: list[BaseException], *types: type[BaseException]) -> bool:
    return any(isinstance(item, types) for item in chain)
