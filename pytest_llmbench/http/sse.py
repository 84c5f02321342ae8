"""Server-sent events from an OpenAI-compatible server, read on raw bytes with a time stamp per read (the bytes
become events in ``events.py``; this module says what the events mean).

The parser works on bytes, not text: requests' ``iter_lines(decode_unicode=True)`` splits lines on
U+2028 inside JSON strings, and decoding before the line split breaks multi-byte characters that
straddle two reads. Each read is stamped with the kernel's receive time of its bytes where the system gives one
(``arrival.py``), otherwise with ``perf_counter_ns`` the moment it returns, so the timings measure when bytes
arrived rather than when they were parsed; ``timing.py`` says when a reader that fell behind cannot vouch for them.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import urllib3.exceptions

from ..jsonbound import loads_bounded
from ..result import ApiError
from .api_errors import BODY_READ_ERRORS, MESSAGE_LIMIT, size_text
from .arrival import last_read
from .events import ErrorEvent, EventTooLarge, SSEParser
from .openai import cached_count, reasoning_tokens, usage_count
from .reasoning import reasoning_of
from .redact import NO_SECRETS, Secrets
from .responses import RESPONSES, responses_event
from .server_timing import keep_reports
from .timing import EventClock
from .tool_calls import ToolCallParts

if TYPE_CHECKING:
    import requests

DONE = "[DONE]"
READ_SIZE = 65536
DRAIN_LIMIT = 0.5  # seconds to wait for the end of the body after [DONE] before closing the connection
_EXCERPT = 200


@dataclass
class StreamOutcome:
    """What one streamed answer delivered, with the arrival time of every chunk that carried text.

    ``completion_tokens`` stays None when the server sent no usage chunk (llama.cpp's server sends
    none even when asked): the caller then estimates it, e.g. from ``len(content_ns)``.
    """

    sent_ns: int
    text: str = ""  # the answer; reasoning (thinking) text is timed but kept out of it
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    finish_reason: str | None = None
    chunk_count: int = 0  # JSON chunks parsed, [DONE] not counted
    content_ns: list[int] = field(default_factory=list)  # perf_counter_ns of each chunk adding text
    end_ns: int | None = None  # when the answer ended ([DONE] read), broke off or was given up
    done: bool = False  # saw data: [DONE]
    tool_calls: ToolCallParts = field(default_factory=ToolCallParts)  # the functions called (not answer text)
    reasoning_tokens: int = 0  # counted in completion_tokens without their text being sent (usage details)
    error: ApiError | None = None
    timing_degraded: str | None = None  # why the text events' times cannot be vouched for (timing.py)
    server_reports: dict[str, Any] = field(default_factory=dict)  # the server's timing objects (server_timing.py)
    answer_ns: int | None = None  # the first chunk of answer text (reasoning.py)
    reasoning_parts: list[str] = field(default_factory=list)  # the thinking, kept apart from the answer
    response_id: str | None = None  # the Responses API's id of the answer, for a next turn's previous_response_id

    @property
    def first_content_ns(self) -> int | None:
        return self.content_ns[0] if self.content_ns else None

    @property
    def ttft(self) -> float | None:
        """Seconds from sending the request to the first chunk that carried text."""
        first = self.first_content_ns
        return None if first is None else (first - self.sent_ns) / 1e9

    @property
    def ttfot(self) -> float | None:
        """Seconds to the first chunk of the answer itself (after any thinking)."""
        return None if self.answer_ns is None else (self.answer_ns - self.sent_ns) / 1e9

    @property
    def time_to_second_token(self) -> float | None:
        """Seconds between the first two generated chunks (AIPerf's TTST): a slow first decode step shows here."""
        return (self.content_ns[1] - self.content_ns[0]) / 1e9 if len(self.content_ns) > 1 else None

    @property
    def itl(self) -> list[float]:
        """Seconds between consecutive text chunks (0 for chunks that arrived in the same read)."""
        stamps = self.content_ns
        return [(later - earlier) / 1e9 for earlier, later in itertools.pairwise(stamps)]

    @property
    def e2e_latency(self) -> float | None:
        return None if self.end_ns is None else (self.end_ns - self.sent_ns) / 1e9

    def failure(self, kind: str, message: str) -> ApiError:
        """An error that says how far the stream got."""
        return ApiError(
            kind=kind,
            message=f"{message} after {self.chunk_count} chunks",
            details={"chunks": self.chunk_count, "content_chunks": len(self.content_ns)},
        )


def tpot(ttft: float | None, e2e_latency: float | None, completion_tokens: int | None) -> float | None:
    """Time per output token after the first, the way vLLM's benchmarks define it."""
    if ttft is None or e2e_latency is None or completion_tokens is None or completion_tokens < 2:
        return None
    return (e2e_latency - ttft) / (completion_tokens - 1)


def read_stream(response: requests.Response, api_type: str, sent_ns: int, deadline: float,
                max_bytes: int | None = None, secrets: Secrets = NO_SECRETS) -> StreamOutcome:
    """Read a 200 streaming response to its end on this thread; failures come back in ``error`` with the text so far.

    ``deadline`` is a ``time.monotonic()`` value checked between reads; a single blocked read is
    bounded by the socket timeout the caller set (or by the caller closing the socket).
    """
    reader = StreamReader(api_type, sent_ns, max_bytes, secrets)
    raw = response.raw
    try:
        while not reader.finished:
            if time.monotonic() > deadline:
                reader.fail("deadline", "the stream passed its deadline")
                break
            reader.feed(raw.read1(READ_SIZE, decode_content=True), last_read())  # the kernel's stamp (arrival.py)
    except BODY_READ_ERRORS as exc:
        reader.broken(exc)
    outcome = reader.outcome()
    if outcome.done:
        _drain(raw, min(deadline, time.monotonic() + DRAIN_LIMIT))
    return outcome


class StreamReader:
    """One streamed answer, fed the body's decoded bytes read by read as they come (push-based): the one parser,
    size cap, redaction and marking rule for whoever reads the socket (``read_stream`` here, or ``reader.py``).

    ``end_ns`` is the read that brought [DONE] (or the end): the wait for the rest of the body after it is not the
    answer's time. A stream past ``max_bytes`` decoded bytes is read no further: the answer so far is kept, the
    error says so.
    """

    def __init__(self, api_type: str, sent_ns: int, max_bytes: int | None = None,
                 secrets: Secrets = NO_SECRETS) -> None:
        self._outcome = StreamOutcome(sent_ns=sent_ns)
        self._api_type = api_type
        self._left = max_bytes
        self._max_bytes = max_bytes
        self._secrets = secrets
        self._parser = SSEParser()
        self._answer: list[str] = []
        self._clock = EventClock(sent_ns)

    @property
    def finished(self) -> bool:
        """[DONE] came or the stream failed: nothing more is read into the answer."""
        return self._outcome.error is not None or self._outcome.done

    def feed(self, data: bytes, mark: tuple[int, int] | None) -> None:
        """One read's bytes (empty: the body ended) with ``mark``, its (number, arrival) from ``arrival.py``."""
        outcome = self._outcome
        outcome.end_ns = now = self._clock.read(mark)
        if not data:
            self._end()
            return
        left = self._left
        over = left is not None and len(data) > left
        if left is not None:
            data, self._left = data[:left], left - min(left, len(data))
        try:
            for payload in self._parser.feed(data):
                texts = len(outcome.content_ns)
                _take_event(outcome, payload, self._api_type, now, self._answer, self._secrets)
                self._clock.event(text=len(outcome.content_ns) > texts)
                if self.finished:
                    break
        except EventTooLarge as exc:
            outcome.error = outcome.failure("stream", str(exc))
            return
        self._clock.parsed(self._parser.pending)
        if over and not self.finished:
            message = f"response exceeded {size_text(self._max_bytes or 0)} (setting max_response_bytes)"
            outcome.error = outcome.failure("too_large", message)

    def fail(self, kind: str, message: str) -> None:
        """The reader gives the stream up (its deadline passed)."""
        self._outcome.error = self._outcome.failure(kind, message)

    def broken(self, exc: Exception) -> None:
        """The connection broke off (or went silent past its read timeout)."""
        self._outcome.end_ns = time.perf_counter_ns()
        self._outcome.error = _broken_off(self._outcome, exc)

    def outcome(self) -> StreamOutcome:
        """The answer as far as it got, with its text and whether its times can be vouched for."""
        self._outcome.text = "".join(self._answer)
        self._outcome.timing_degraded = self._clock.degraded
        return self._outcome

    def _end(self) -> None:
        cut_event = self._parser.close()
        if cut_event == DONE:
            self._outcome.done = True
            return
        where = " inside an event" if cut_event else ""
        self._outcome.error = self._outcome.failure("stream", f"the stream ended{where} without data: [DONE]")


def _take_event(outcome: StreamOutcome, payload: str, api_type: str, now: int, answer: list[str],
                secrets: Secrets = NO_SECRETS) -> None:
    if isinstance(payload, ErrorEvent):
        try:
            chunk = loads_bounded(payload)
        except ValueError:
            chunk = None
        chunk = chunk if isinstance(chunk, dict) else {"error": {"message": payload or "no message"}}
        outcome.error = _server_error(outcome, chunk, payload, secrets)
        return
    if payload == DONE:
        outcome.done = True
        return
    if not payload.strip():
        return
    try:
        chunk = loads_bounded(payload)
    except ValueError:
        outcome.error = outcome.failure("stream", f"a data line is not JSON: {secrets.clip(payload, _EXCERPT)!r}")
        return
    if not isinstance(chunk, dict):
        shown = secrets.clip(payload, _EXCERPT)
        outcome.error = outcome.failure("stream", f"a data line is not a JSON object: {shown!r}")
        return
    if chunk.get("error") or chunk.get("object") == "error":
        outcome.error = _server_error(outcome, chunk, payload, secrets)
        return
    outcome.chunk_count += 1
    keep_reports(chunk, outcome.server_reports)
    if api_type == RESPONSES:
        _took(outcome, now, answer, *responses_event(outcome, chunk))
        return
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        prompt, completion = usage_count(usage.get("prompt_tokens")), usage_count(usage.get("completion_tokens"))
        outcome.prompt_tokens = outcome.prompt_tokens if prompt is None else prompt
        outcome.completion_tokens = outcome.completion_tokens if completion is None else completion
        outcome.reasoning_tokens = reasoning_tokens(usage) or outcome.reasoning_tokens
        cached = cached_count(usage)
        outcome.cached_tokens = outcome.cached_tokens if cached is None else cached
    choice = _first_choice(chunk)
    if choice is None:
        return
    outcome.finish_reason = choice.get("finish_reason") or outcome.finish_reason
    if api_type == "chat":
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        text = _text(delta.get("content"))
        reasoning = reasoning_of(delta)
        tool = outcome.tool_calls.feed(delta)
    else:
        text = _text(choice.get("text"))
        reasoning, tool = "", False
    _took(outcome, now, answer, text, reasoning, tool)


def _took(outcome: StreamOutcome, now: int, answer: list[str], text: str, reasoning: str, tool: bool) -> None:
    """Reasoning and tool-call fragments are generated tokens too: they count for TTFT and ITL like answer text."""
    if text or reasoning or tool:
        answer.append(text)
        outcome.content_ns.append(now)
        if reasoning:
            outcome.reasoning_parts.append(reasoning)
        if text and outcome.answer_ns is None:
            outcome.answer_ns = now


def unfinished(outcome: StreamOutcome, asked: int | None) -> ApiError | None:
    """Why a stream that ended cleanly is still no whole answer, or None.

    Every OpenAI-compatible server ends a whole answer with a ``finish_reason``; a stream without one was cut
    short (llama-cpp-python's ``interrupt_requests`` ends a stream with [DONE] when the next request comes), unless
    it reached the ``max_tokens`` asked for. A stream with no text, no tool call and no usage is no answer at all.
    """
    tokens = outcome.completion_tokens if outcome.completion_tokens is not None else len(outcome.content_ns)
    if not outcome.content_ns and not outcome.tool_calls and outcome.completion_tokens is None:
        return outcome.failure("incomplete", "empty answer: the stream carried no text, no tool call and no usage")
    if outcome.finish_reason or (asked is not None and tokens >= asked):
        return None
    of = f" of the {asked} asked for" if asked is not None else ""
    return outcome.failure("incomplete", f"the stream ended without a finish_reason ({tokens} tokens{of}): cut "
                                         "short by the server")


def _first_choice(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The choice with index 0; the usage chunk has none, and n > 1 streams interleave others."""
    for choice in chunk.get("choices") or []:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _text(value: Any) -> str:
    """Text pieces are strings; null (or anything odd) adds nothing instead of breaking the join."""
    return value if isinstance(value, str) else ""


def _broken_off(outcome: StreamOutcome, exc: Exception) -> ApiError:
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return outcome.failure("read_timeout", f"the server went silent mid-stream ({exc})")
    return outcome.failure("stream", f"the connection broke off mid-stream ({exc})")


def _server_error(outcome: StreamOutcome, chunk: dict[str, Any], payload: str, secrets: Secrets) -> ApiError:
    """An error the server reported inside the stream after it had already answered 200."""
    body = chunk["error"] if isinstance(chunk.get("error"), dict) else chunk
    message = body.get("message") if isinstance(body.get("message"), str) else str(chunk.get("error"))
    code = body.get("code")
    shown = secrets.clip(message, MESSAGE_LIMIT)
    error = outcome.failure("stream", f"the server reported an error mid-stream: {shown}")
    error.type = body.get("type") if isinstance(body.get("type"), str) else None
    error.body_excerpt = secrets.clip(payload, _EXCERPT)
    if code is not None:
        error.details["code"] = code
    return error


def _drain(raw: Any, until: float) -> None:
    """Read the end of the HTTP body after [DONE] so the connection can go back to the pool.

    Servers close the body right after [DONE]; a reused connection keeps TCP (and TLS) set-up out
    of the next request's TTFT. A server holding the body open is not waited for past ``until``:
    the connection is closed instead. Anything that goes wrong here is no longer the answer's business.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    try:
        while (left := until - time.monotonic()) > 0:
            if sock is not None:
                sock.settimeout(left)
            if not raw.read1(READ_SIZE, decode_content=True):
                return
        raw.close()  # still open at the limit: not a connection to hand to the next request
    except BODY_READ_ERRORS:
        pass  # urllib3 has closed the connection
