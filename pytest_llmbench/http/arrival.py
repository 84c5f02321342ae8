"""When a request went out and when its bytes arrived: the kernel's receive time of each read on a plain-HTTP
socket (Linux's SO_TIMESTAMPNS), and the moment the request starts out on its connection.

A thread that reads a streamed answer stamps each read when it gets the GIL back, and with many requests in
flight in one process that can be milliseconds after the bytes came: the kernel's stamp is not. A read's stamp is
when its last bytes came (Linux keeps one per queued segment, and merges the stamps of segments that wait
together into the latest): several events in one read share it, which ``timing.py`` accounts for. Where the
kernel gives no stamp (TLS, which reads inside OpenSSL; other systems) the time of the read stands.

The kernel's clock is the wall clock; a stamp becomes ``perf_counter_ns`` through the offset between the two
clocks, measured between two ``perf_counter_ns`` readings close together. Measured per read instead, a thread
that lost the GIL between its two clock readings moved the stamp back by the wait: negative inter-token
latencies of up to -186 ms with 128 streams in flight.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import threading
import time
from typing import Any, TypeGuard

# Python names no SO_TIMESTAMPNS: Linux's asm-generic value (SO_TIMESTAMPNS_OLD, a timespec of two longs) on the
# machines that use asm-generic/socket.h; elsewhere (other systems, or Linux on machines that number it otherwise)
# the option is never set.
_ASM_GENERIC = {"x86_64", "amd64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64"}
SO_TIMESTAMPNS: int | None = 35 if sys.platform == "linux" and platform.machine().lower() in _ASM_GENERIC else None
_STAMP = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds
_ANCILLARY = socket.CMSG_SPACE(_STAMP.size) if SO_TIMESTAMPNS is not None else 0
_latest = threading.local()  # this thread's attempt: sent_ns (perf_counter); its last stamped read: wall_ns, reads
_OFFSET_FRESH_NS = 1_000_000_000  # the clocks' offset is measured again after this (NTP slews the wall clock)
_OFFSET_STALE_NS = 10_000_000_000  # past this, even a wide measurement replaces the offset
_TIGHT_NS = 20_000  # a measurement of the offset bracketed this closely is taken at once
_WIDE_NS = 200_000  # one bracketed wider than this does not replace a fresh enough offset
_offset = [0, -_OFFSET_STALE_NS]  # the wall clock less perf_counter_ns, and perf_counter_ns when it was measured


class _StampedSocket(socket.socket):
    """A socket whose reads note when their bytes arrived (the kernel's stamp of the last segment), for the
    reading thread."""

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        size, ancillary, _, _ = self.recvmsg_into([view[:nbytes] if nbytes else view], _ANCILLARY, flags)
        wall = _wall_stamp(ancillary)
        if wall is not None:
            _latest.wall_ns = wall
            _latest.reads = getattr(_latest, "reads", 0) + 1
        return size


def _wall_stamp(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time (wall clock) in a read's control messages, if it gave one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _STAMP.size:
            seconds, nanoseconds = _STAMP.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def is_stamped(sock: Any) -> TypeGuard[socket.socket]:
    """Whether ``sock`` is a plain socket whose reads the kernel stamps (``stamped`` made it so)."""
    return isinstance(sock, _StampedSocket)


def receive(sock: socket.socket, size: int) -> tuple[bytes, int | None]:
    """One read of a stamped socket on any thread: its bytes and their ``perf_counter_ns`` arrival (None: the
    kernel gave no stamp)."""
    data, ancillary, _, _ = sock.recvmsg(size, _ANCILLARY)
    wall = _wall_stamp(ancillary)
    return data, None if wall is None else _arrived_ns(wall)


def stamped(sock: socket.socket) -> socket.socket:
    """``sock`` (just connected) as a socket whose reads are stamped, when the system stamps them."""
    if SO_TIMESTAMPNS is None or type(sock) is not socket.socket:
        return sock
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return sock
    timeout = sock.gettimeout()
    replacement = _StampedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    replacement.settimeout(timeout)
    return replacement


def forget() -> None:
    """Before an attempt: the stamps of this thread's earlier request are not this one's."""
    _latest.wall_ns = None
    _latest.sent_ns = None


def note_sending() -> None:
    """A request starts out: its connection opens, or its first write goes. The first note of an attempt counts:
    where its TTFT and latency start."""
    if getattr(_latest, "sent_ns", None) is None:
        _latest.sent_ns = time.perf_counter_ns()


def request_sent_ns(prepared_ns: int) -> int:
    """When this thread's request started out; ``prepared_ns`` (when its preparation began) if not noted.

    Preparing a request (requests' and urllib3's Python, a connection from the pool) is the client's time, not the
    server's: with many requests in flight a thread can wait tens of milliseconds for the GIL in between."""
    noted = getattr(_latest, "sent_ns", None)
    return noted if noted is not None and noted >= prepared_ns else prepared_ns


def last_read() -> tuple[int, int] | None:
    """(number, ``perf_counter_ns`` arrival) of this thread's last stamped read in this attempt; None when the
    socket gives no stamps. The number tells whether two pieces of a response came in the same read."""
    wall = getattr(_latest, "wall_ns", None)
    if wall is None:
        return None
    return _latest.reads, _arrived_ns(wall)


def _arrived_ns(wall_ns: int) -> int:
    """A kernel stamp as ``perf_counter_ns``, never later than now."""
    return min(wall_ns - _clock_offset(), time.perf_counter_ns())


def _clock_offset() -> int:
    """The wall clock less ``perf_counter_ns``, from the tightest of a few bracketed readings, kept for a second.

    A measurement whose every try lost the GIL between its readings is wide: the last good offset is kept (NTP
    slews the wall clock by 0.5 ms a second at most) unless it is older than ``_OFFSET_STALE_NS``."""
    offset, measured = _offset
    now = time.perf_counter_ns()
    if now - measured < _OFFSET_FRESH_NS:
        return offset
    best = (2**62, 0)
    for _ in range(8):
        before = time.perf_counter_ns()
        wall = time.time_ns()
        after = time.perf_counter_ns()
        best = min(best, (after - before, wall - (before + after) // 2))
        if best[0] <= _TIGHT_NS:
            break
    if best[0] <= _WIDE_NS or now - measured >= _OFFSET_STALE_NS:
        _offset[:] = best[1], now
        return best[1]
    return offset
