"""When a request went out and when its bytes arrived: the kernel's receive time of each read on a plain-HTTP
socket (Linux's SO_TIMESTAMPNS), and the moment the request starts out on its connection.

A thread that reads a streamed answer stamps each read when it gets the GIL back, and with many requests in
flight in one process that can be milliseconds after the bytes came: the kernel's stamp is not. The kernel's
clock is the wall clock; a stamp is turned into ``perf_counter_ns`` by its age, read when it is used. Where the
kernel gives no stamp (TLS, which reads inside OpenSSL; other systems) the time of the read stands, as before.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import threading
import time
from typing import Any

# Python names no SO_TIMESTAMPNS: Linux's asm-generic value (SO_TIMESTAMPNS_OLD, a timespec of two longs) on the
# machines that use asm-generic/socket.h; elsewhere (other systems, or Linux on machines that number it otherwise)
# the option is never set.
_ASM_GENERIC = {"x86_64", "amd64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64"}
SO_TIMESTAMPNS: int | None = 35 if sys.platform == "linux" and platform.machine().lower() in _ASM_GENERIC else None
_STAMP = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds
_ANCILLARY = socket.CMSG_SPACE(_STAMP.size) if SO_TIMESTAMPNS is not None else 0
_latest = threading.local()  # this thread's attempt: sent_ns (perf_counter) and wall_ns of its last stamped read


class _StampedSocket(socket.socket):
    """A socket whose reads note the kernel's receive time of their first byte, for the reading thread."""

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        size, ancillary, _, _ = self.recvmsg_into([view[:nbytes] if nbytes else view], _ANCILLARY, flags)
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _STAMP.size:
                seconds, nanoseconds = _STAMP.unpack_from(data)
                _latest.wall_ns = seconds * 1_000_000_000 + nanoseconds
        return size


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


def arrival_ns(not_before: int) -> int:
    """``perf_counter_ns`` when the bytes of this thread's last read arrived; the time now if the kernel gave no
    stamp or the stamp is not believable (older than ``not_before``, or from the future after a clock step)."""
    now = time.perf_counter_ns()
    wall = getattr(_latest, "wall_ns", None)
    if wall is None:
        return now
    arrived = now - (time.time_ns() - wall)
    return arrived if not_before <= arrived <= now else now
