"""The HTTP/1.1 body framing of a streamed answer read off its raw socket (``reader.py``): chunked or a
Content-Length. The one piece of http.client the reading loop repeats, kept small and strict.

Bodies delimited by the connection's close never come here: http.client gives their socket to the response
alone, and they are read on the request's thread. A hostile server cannot make it hold more than ``LINE_LIMIT``
bytes of framing (a chunk-size line, or a trailer that never ends), nor pass a size that is not plain
hexadecimal: each is a ``FramingError``, which the reader reports as a broken connection, the way urllib3 reports
http.client's own.
"""

from __future__ import annotations

import re

LINE_LIMIT = 65536  # bytes of one chunk-size line, or of the whole trailer (http.client's _MAXLINE)
_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class FramingError(ValueError):
    """The body's framing is broken or hostile: the connection cannot be read on."""


class Body:
    """The framing state of one response body, fed raw reads; hands back the body's bytes."""

    def __init__(self, chunked: bool, length: int | None) -> None:
        """``length``: the Content-Length of a body that is not chunked."""
        self.chunked = chunked
        self._left = length  # bytes left of a Content-Length body, or of the current chunk (None: no length)
        self._state = "size" if chunked else "data"  # chunked: size, data, data-end, trailer
        self._line = bytearray()  # an unfinished size line or trailer line
        self._framing = 0  # bytes of the trailer so far
        self.ended = not chunked and not length  # the body's end was read (last chunk and trailer, or length)
        self.extra = False  # bytes came after the end: the connection holds something no request asked for

    def decode(self, data: bytes) -> bytes:
        """The body bytes in one read; raises FramingError."""
        if self.ended:
            self.extra = self.extra or bool(data)
            return b""
        if not self.chunked:
            assert self._left is not None
            body, rest = data[: self._left], data[self._left :]
            self._left -= len(body)
            self.ended = self._left == 0
            self.extra = bool(rest)
            return body
        out: list[bytes] = []
        pos = 0
        while pos < len(data) and not self.ended:
            pos = self._step(data, pos, out)
        self.extra = self.extra or pos < len(data)
        return b"".join(out)

    def cut(self) -> str | None:
        """At the connection's end: why the body is incomplete, or None."""
        if self.ended:
            return None
        if self.chunked:
            return f"the chunked body ended without its last chunk ({self._state})"
        return f"the body ended {self._left} bytes short of its Content-Length"

    def _step(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """Reads one piece of the chunked framing from ``pos``; returns where the next one starts."""
        if self._state == "data":
            assert self._left is not None
            take = data[pos : pos + self._left]
            out.append(take)
            self._left -= len(take)
            if not self._left:
                self._state = "data-end"
            return pos + len(take)
        line, pos = self._take_line(data, pos)
        if line is None:
            return pos
        if self._state == "data-end":
            if line:
                raise FramingError("a chunk is longer than its size")
            self._state = "size"
        elif self._state == "size":
            size = line.split(b";", 1)[0].strip(b" \t")
            if not _SIZE.fullmatch(size):
                raise FramingError(f"invalid chunk size line ({len(line)} bytes)")
            self._left = int(size, 16)
            self._state = "data" if self._left else "trailer"
        elif not line:  # the blank line that ends the trailer, and the body
            self.ended = True
        return pos

    def _take_line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """The next whole line (its CRLF or LF taken off), or None with the piece kept for the next read."""
        end = data.find(b"\n", pos, pos + LINE_LIMIT + 1)
        stop = end + 1 if end >= 0 else min(len(data), pos + LINE_LIMIT + 1)
        self._line += data[pos:stop]
        self._framing += stop - pos
        if len(self._line) > LINE_LIMIT or (self._state == "trailer" and self._framing > LINE_LIMIT):
            raise FramingError(f"a chunk-size line or trailer grew past {LINE_LIMIT} bytes")
        if end < 0:
            return None, stop
        line = bytes(self._line).rstrip(b"\n").removesuffix(b"\r")
        self._line.clear()
        if self._state == "size":
            self._framing = 0  # the trailer counts from the last chunk's size line on
        return line, stop
