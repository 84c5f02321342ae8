"""Server-sent events parsed from raw bytes (the WHATWG rules an OpenAI-style stream needs), apart from what the
events mean (``sse.py``): any reader of the socket — a request's own thread or the reading loop — feeds it."""

from __future__ import annotations

import re

MAX_EVENT_BYTES = 16 * 2**20  # no answer chunk comes near this; a server sending one is broken
_LINE_END = re.compile(rb"\r\n|\r|\n")


class EventTooLarge(ValueError):
    """An event (or a line) grew past ``MAX_EVENT_BYTES`` without ending."""


class ErrorEvent(str):
    """The data of an event named ``error`` (``event: error``): the server's report of a failure mid-stream."""


class SSEParser:
    """Incremental SSE parser (WHATWG rules) that hands back the data of each complete event.

    Only ``data`` fields and an ``event: error`` name matter to an OpenAI-style stream (the data of such an event
    comes back as an ``ErrorEvent``): comments (keep-alive pings), other ``event`` names, ``id`` and ``retry``
    are dropped. Events are decoded as UTF-8 only once complete, so a character
    split across reads is never cut. Each read is scanned once: the unfinished line kept between reads
    holds no line end, so a large event arriving in small reads costs linear time.
    """

    def __init__(self) -> None:
        self._partial = bytearray()  # the current line so far: never holds a line end
        self._data: list[bytes] = []
        self._size = 0  # bytes held for the current event: its data lines and the partial line
        self._skip_lf = False  # a CR ended the last read: an LF opening the next one belongs to it
        self._error = False  # the current event is named "error"

    def feed(self, chunk: bytes) -> list[str]:
        """The events this read completed; raises EventTooLarge past ``MAX_EVENT_BYTES``."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        events: list[str] = []
        start = 0
        for match in _LINE_END.finditer(chunk):
            line = chunk[start : match.start()]
            if self._partial:
                line = bytes(self._partial) + line
                self._partial.clear()
            event = self._line(line)
            if event is not None:
                events.append(event)
            start = match.end()
            self._skip_lf = match.group() == b"\r" and start == len(chunk)
        self._partial += chunk[start:]
        if self._size + len(self._partial) > MAX_EVENT_BYTES:
            raise EventTooLarge(f"an event grew past {MAX_EVENT_BYTES // 2**20} MB without ending")
        return events

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished event are held."""
        return bool(self._partial or self._data)

    def close(self) -> str | None:
        """The data of an event the stream cut off before its closing blank line, if any."""
        if self._partial:
            self._line(bytes(self._partial))
            self._partial.clear()
        if not self._data:
            return None
        return self._dispatch()

    def _line(self, line: bytes) -> str | None:
        if not line:
            if not self._data:
                self._error = False  # an event without data is not dispatched (WHATWG)
                return None
            return self._dispatch()
        name, _, value = line.partition(b":")  # a comment (": ping") has the empty name
        if name == b"event":
            self._error = value.strip() == b"error"
        elif name == b"data":
            value = value[1:] if value.startswith(b" ") else value
            self._data.append(value)
            self._size += len(value) + 1
        return None

    def _dispatch(self) -> str:
        data = b"\n".join(self._data).decode("utf-8", errors="replace")
        self._data = []
        self._size = 0
        if self._error:
            self._error = False
            return ErrorEvent(data)
        return data
