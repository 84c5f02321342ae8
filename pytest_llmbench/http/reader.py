"""One thread per process reads the body of every streamed answer in flight (``selectors``), so that the thread
that sent a request sleeps until its stream ends instead of waking for every token, or (a load run's pool, through
``Stream.when_ended``) needs no thread at all until then.

With a thread per stream, a thousand streams in flight are a thousand threads taking the GIL in turn for each
token: a reader gets to its socket late, several tokens wait there together, and their times cannot be vouched
for (``timing.py`` marks them). Measured (benchmarks/reader_loop_probe.py, 1,024 streams, 20,000 tokens a second,
2 cores): a thread per stream marked 97 % of the answers and used 8.4 s of CPU, one reading loop 0 % and 0.4 s.

Everything before the body stays on the request's thread (connect, TLS, sending, headers, redirects, status,
retries); a 200 event stream on a plain-HTTP socket the kernel stamps (``arrival.py``), with no content encoding,
is handed over here. The loop takes the body's framing off (``framing.py``) and feeds the one ``StreamReader``
(parser, size cap, redaction, marking rule). Deadlines stay with the transport's watchdog: its shutdown of the
socket reaches the loop as the connection's end, and the request's thread reports the deadline. The socket's
read timeout is the attempt's whole timeout, so the watchdog always comes first. After [DONE] the rest of the
body is awaited for up to ``DRAIN_LIMIT``, so that a whole body leaves its connection to the next request.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar, cast

from . import arrival
from .api_errors import BODY_READ_ERRORS
from .framing import Body, FramingError
from .redact import Secrets
from .sse import DRAIN_LIMIT, READ_SIZE, StreamOutcome, StreamReader

ENABLED = os.environ.get("LLMBENCH_READING_LOOP", "1") != "0"  # internal switch: "0" reads on the request's thread
_GRACE = 1.0  # seconds past the deadline a request's thread waits for the loop before it ends the stream itself


T = TypeVar("T")
Steps = Generator["Stream", None, T]  # a request's work, suspended while the loop reads each stream it hands over


class Stream:
    """One handed-over body: its socket, framing and reader, and the event its request waits on (asleep on its
    thread, or as a callback that gives the request a thread again: ``when_ended``)."""

    __slots__ = ("_lock", "_on_end", "body", "deadline", "drain_until", "ended", "reader", "reads", "response",
                 "sock", "timeout")

    def __init__(self, sock: socket.socket, body: Body, reader: StreamReader, deadline: float,
                 response: Any) -> None:
        self.sock, self.body, self.reader, self.deadline, self.response = sock, body, reader, deadline, response
        self.reads = 0  # the socket's reads so far (arrival.py numbers them)
        self.timeout: float | None = None  # the socket's own, given back when the stream ends
        self.ended = threading.Event()
        self.drain_until: float | None = None  # [DONE] came: the rest of the body is awaited until then
        self._lock = threading.Lock()
        self._on_end: Callable[[], None] | None = None

    def take(self, data: bytes, stamp: tuple[int, int] | None) -> bool:
        """One raw read (empty: the connection ended) and its (number, arrival); whether the stream is over."""
        try:
            payload = self.body.decode(data)
            cut = None if data else self.body.cut()
        except FramingError as exc:
            return self.broken(exc)
        if not self.reader.finished:
            if payload:
                self.reader.feed(payload, stamp)
            if cut is not None:
                return self.broken(ConnectionError(f"Connection broken: {cut}"))
            if self.body.ended and not self.reader.finished:
                self.reader.feed(b"", stamp)  # the body's end, as a read of nothing
            if self.reader.finished:
                if self.reader.outcome().error is not None:
                    return True
                self.drain_until = min(self.deadline, time.monotonic() + DRAIN_LIMIT)
        return self.body.ended or self.body.extra or not data

    def broken(self, exc: Exception) -> bool:
        """The connection broke off, or its framing did: the stream is over."""
        if not self.reader.finished:
            self.reader.broken(exc)
        return True

    @property
    def reusable(self) -> bool:
        """The whole answer and body were read, and nothing more: the connection can serve the next request."""
        return self.reader.outcome().done and self.body.ended and not self.body.extra

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.settimeout(self.timeout)
        with self._lock:
            self.ended.set()
            then, self._on_end = self._on_end, None
        if then is not None:
            then()

    def when_ended(self, then: Callable[[], None]) -> None:
        """Calls ``then`` once the stream has ended: now, or on the reading thread as it ends (keep it short)."""
        with self._lock:
            if not self.ended.is_set():
                self._on_end = then
                return
        then()

    def result(self) -> StreamOutcome:
        """The answer of an ended stream; a whole body leaves its connection to the next request."""
        if self.ended.is_set() and self.reusable:
            original = self.response.raw._original_response
            original.close()  # http.client's part is over: urllib3 puts the connection back in its pool
            self.response.raw.release_conn()
        return self.reader.outcome()


class ReadingLoop:
    """The process's reading thread, started with the first stream handed over."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh state: also what a forked child starts with (the parent's thread and selector are not its own)."""
        self._lock = threading.Lock()
        self._arriving: list[Stream] = []
        self._thread: threading.Thread | None = None
        self._wake: socket.socket | None = None

    def read(self, response: Any, api_type: str, sent_ns: int, deadline: float, max_bytes: int | None,
             secrets: Secrets) -> StreamOutcome | None:
        """The streamed answer, read by the loop while this thread sleeps; None when the response cannot be handed
        over (no stamped plain socket of its own, a content encoding): the caller reads it on its own thread."""
        stream = self.hand_over(response, api_type, sent_ns, deadline, max_bytes, secrets)
        if stream is None:
            return None
        self.wait(stream)
        return stream.result()

    def hand_over(self, response: Any, api_type: str, sent_ns: int, deadline: float, max_bytes: int | None,
                  secrets: Secrets) -> Stream | None:
        """Gives the streamed answer to the loop and returns at once (``wait`` or ``Stream.when_ended``, then
        ``Stream.result``); None when it cannot be handed over (see ``read``)."""
        raw = response.raw
        original = getattr(raw, "_original_response", None)  # http.client's response, which parsed the headers
        sock = getattr(getattr(raw, "connection", None), "sock", None)  # None once http.client owns it (close)
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if (not ENABLED or original is None or original.fp is None or not arrival.is_stamped(sock)
                or encoding != "identity" or not (original.chunked or original.length is not None)):
            return None
        stream = Stream(sock, Body(bool(original.chunked), original.length),
                        StreamReader(api_type, sent_ns, max_bytes, secrets), deadline, response)
        stream.timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            first = original.fp.read1(READ_SIZE)  # what http.client read past the headers, or what waits now
        except BODY_READ_ERRORS as exc:
            stream.broken(exc)
            stream.finish()
            return stream
        mark = arrival.last_read()  # the read that brought those bytes: the headers' own, or the one just made
        stream.reads = mark[0] if mark else 0
        if first and stream.take(first, mark):
            stream.finish()
            return stream
        with self._lock:
            self._start()
            self._arriving.append(stream)
            assert self._wake is not None
            with contextlib.suppress(BlockingIOError):  # a wake-up already waits
                self._wake.send(b"\0")
        return stream

    @staticmethod
    def wait(stream: Stream) -> None:
        """Sleeps until the loop has ended the stream; ends it here if the loop did not by the deadline."""
        if stream.ended.wait(max(0.0, stream.deadline - time.monotonic()) + _GRACE):
            return
        with contextlib.suppress(OSError):  # the watchdog's shutdown did not end it: the loop may be stuck
            socket.socket.shutdown(stream.sock, socket.SHUT_RDWR)
        if not stream.ended.wait(_GRACE):
            stream.broken(ConnectionAbortedError("the reading loop did not end the stream by its deadline"))

    def run(self, steps: Steps[T]) -> T:
        """Drives ``steps`` on this thread: each stream they hand over is waited for here, asleep."""
        try:
            stream = next(steps)
            while True:
                self.wait(stream)
                stream = steps.send(None)
        except StopIteration as stop:
            return cast("T", stop.value)

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        selector = selectors.DefaultSelector()
        wake, self._wake = socket.socketpair()
        for end in (wake, self._wake):
            end.setblocking(False)
        selector.register(wake, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, args=(selector, wake), name="llmbench-reader", daemon=True)
        self._thread.start()

    def _run(self, selector: selectors.BaseSelector, wake: socket.socket) -> None:
        try:
            self._serve(selector, wake)
        except BaseException as exc:  # noqa: BLE001 - said in every stream it leaves, which nothing else would end
            # A request given back to a load run's pool only when its stream ends would wait for ever: each stream
            # is ended here, with the failure, and the next stream handed over starts a new loop.
            with self._lock:
                self._thread = None
                left, self._arriving = self._arriving, []
                if self._wake is not None:
                    self._wake.close()
            left += [key.data for key in list(selector.get_map().values()) if key.data is not None]
            for stream in left:
                if not stream.ended.is_set():
                    stream.broken(ConnectionAbortedError(f"the reading loop failed: {exc!r}"))
                    stream.finish()
            selector.close()
            wake.close()

    def _serve(self, selector: selectors.BaseSelector, wake: socket.socket) -> None:
        draining: list[tuple[float, int, Stream]] = []  # streams past [DONE], by the end of their wait
        order = itertools.count()
        while True:
            timeout = max(0.0, draining[0][0] - time.monotonic()) if draining else None
            for key, _ in selector.select(timeout):
                stream = key.data
                if stream is None:
                    for arrived in self._admit(selector, wake):
                        if arrived.drain_until is not None:
                            heapq.heappush(draining, (arrived.drain_until, next(order), arrived))
                    continue
                before = stream.drain_until
                over = self._step(stream)
                if over:
                    selector.unregister(stream.sock)
                    stream.finish()
                elif before is None and stream.drain_until is not None:
                    heapq.heappush(draining, (stream.drain_until, next(order), stream))
            now = time.monotonic()
            while draining and draining[0][0] <= now:
                stream = heapq.heappop(draining)[2]
                if not stream.ended.is_set():  # the body is still open at the limit: its connection is closed
                    selector.unregister(stream.sock)
                    stream.finish()

    @staticmethod
    def _step(stream: Stream) -> bool:
        """One read of a ready socket; whether its stream is over."""
        try:
            data, stamp = arrival.receive(stream.sock, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:
            return stream.broken(exc)
        stream.reads += 1
        try:
            return stream.take(data, None if stamp is None else (stream.reads, stamp))
        except Exception as exc:  # noqa: BLE001 - one stream's surprise must not stop the loop every stream needs
            return stream.broken(exc)

    def _admit(self, selector: selectors.BaseSelector, wake: socket.socket) -> list[Stream]:
        with contextlib.suppress(BlockingIOError):
            while wake.recv(4096):
                pass
        with self._lock:
            arriving, self._arriving = self._arriving, []
        admitted = []
        for stream in arriving:
            try:
                selector.register(stream.sock, selectors.EVENT_READ, stream)
            except (OSError, ValueError, KeyError) as exc:  # a socket closed or known already: never read it
                stream.broken(exc)
                stream.finish()
            else:
                admitted.append(stream)
        return admitted


LOOP = ReadingLoop()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=LOOP.reset)
