"""The total deadline of an HTTP attempt, and the connections that make it enforceable.

requests' timeouts bound each socket operation, not the attempt: a server sending a header byte every 0.2 s never
trips a 1 s read timeout. So one watchdog thread per process shuts an attempt's socket down when its deadline
passes, whatever the attempt is doing (sending, waiting for headers, reading the body); the blocked read returns
at once and the attempt reports the deadline. The socket is found through urllib3 connection classes that attach
themselves to the current thread's watch; the reading loop's streams are reached the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import urllib3
from requests.adapters import HTTPAdapter

from . import arrival


class DeadlinePassed(ConnectionAbortedError):
    """Raised by a connection asked to go on after its attempt's deadline (urllib3 reports it as a
    broken connection, which the attempt then reports as the deadline)."""


class Watch:
    """One attempt's deadline and the connection it is using."""

    __slots__ = ("connection", "deadline", "expired", "sent")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.sent = False  # the whole request was written (a reset after it may follow processing)
        self.connection: Any = None

    def expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # the plain socket call: an SSL socket's own would drop its state
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread for the whole process, asleep until the nearest deadline of the attempts in flight."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A fresh state: also what a forked child starts with, since the parent's thread and lock are not its own."""
        self._cond = threading.Condition()
        self._watches: set[Watch] = set()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None
        self._current = threading.local()

    @contextlib.contextmanager
    def watching(self, deadline: float) -> Iterator[Watch]:
        watch = Watch(deadline)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llmbench-deadline", daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._cond.notify()
        self._current.watch = watch
        try:
            yield watch
        finally:
            self._current.watch = None
            with self._cond:
                self._watches.discard(watch)
                watch.connection = None

    def expire_all(self) -> None:
        """End every attempt in flight now, as if its deadline had passed: a stopping run cancels them."""
        with self._cond:
            for watch in self._watches:
                watch.expire()
            self._watches.clear()

    def attach(self, connection: Any) -> None:
        """Called by a connection about to send or to wait for headers, in the attempt's thread."""
        watch = getattr(self._current, "watch", None)
        if watch is None:
            return
        with self._cond:
            if watch.expired:
                raise DeadlinePassed("the attempt's deadline passed")
            watch.connection = connection

    def note_sent(self) -> None:
        """Called by a connection once the whole request is written, in the attempt's thread."""
        watch = getattr(self._current, "watch", None)
        if watch is not None:
            watch.sent = True

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.deadline <= now]:
                    self._watches.discard(watch)
                    watch.expire()
                self._wake_at = min((w.deadline for w in self._watches), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)


WATCHDOG = Watchdog()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=WATCHDOG.reset)  # a lock held by the parent's thread stays held in a child


class _Watched:
    """Mixin for urllib3 connections: attach to the current attempt before sending and before the headers; send
    a request's head and body in one write.

    urllib3 writes the head, then the body. Between the two writes the thread gives up the GIL, and with many
    requests in flight it waited 1.4 ms (median; 16 ms at p99) to get it back: time the server, which starts
    its clock when the body is in, counted as before the request, and the client as part of the TTFT."""

    _holding = False
    _head: bytes | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        WATCHDOG.attach(self)
        self._holding, self._head = True, None
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            self._head = None  # a half-made request never leaves
            raise
        finally:
            self._holding = False
        if self._head is not None:  # no body came: the head goes alone
            head, self._head = self._head, None
            self.send(head)
        WATCHDOG.note_sent()

    def send(self, data: Any) -> None:
        if self._holding:
            if self._head is None and isinstance(data, bytes):  # http.client's first write is the head
                self._head = data
                return
            self._holding = False
            if self._head is not None:
                head, self._head = self._head, None
                if isinstance(data, bytes):
                    data = head + data
                else:  # a body that is not bytes (a file): the head goes first
                    arrival.note_sending()
                    super().send(head)  # type: ignore[misc]
        arrival.note_sending()  # the first write starts the request's time (a new plain connection opens in it)
        super().send(data)  # type: ignore[misc]

    def connect(self) -> None:
        arrival.note_sending()  # opening the connection (TLS too) is part of the request's time
        super().connect()  # type: ignore[misc]

    def getresponse(self) -> Any:
        WATCHDOG.attach(self)  # a socket opened after the deadline fired is caught here
        return super().getresponse()  # type: ignore[misc]

    def _new_conn(self) -> Any:
        return arrival.stamped(super()._new_conn())  # type: ignore[misc]  # its reads note when their bytes came


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _UnverifiedHTTPSPool(_HTTPSPool):
    """Insecure mode, which the user chose and the plugin warns about once: urllib3 would warn on every
    request. Without warnings.catch_warnings per request, which is slow and not thread-safe, and without a
    global filter, which a -W error run would override."""

    def _validate_conn(self, conn: Any) -> None:
        if conn.is_closed:  # what urllib3's own check does before its warning
            conn.connect()


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}
_UNVERIFIED_POOLS = {"http": _HTTPPool, "https": _UnverifiedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    def __init__(self, pools: dict[str, type[urllib3.HTTPConnectionPool]], connections: int) -> None:
        self._pools = pools
        super().__init__(pool_maxsize=connections)  # kept open per host: as many as requests in flight

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:  # not SOCKS: its own
            manager.pool_classes_by_scheme = self._pools
        return manager


def watched_adapter(insecure: bool, connections: int) -> HTTPAdapter:
    """The adapter a transport mounts: its connections attach to the watch, and ``connections`` stay open per host."""
    return _WatchedAdapter(_UNVERIFIED_POOLS if insecure else _POOLS, connections)
