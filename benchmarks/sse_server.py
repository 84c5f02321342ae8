"""An OpenAI-style streaming chat server on a known schedule, to measure how well a client times it.

Each POST waits ``--ttft-ms`` after the request arrived, then sends ``--tokens`` one-token chunks
``--gap-ms`` apart (against an absolute schedule, so a late wake-up never accumulates), a usage
chunk and ``data: [DONE]``. The server records ``perf_counter_ns`` when a request's body arrived (the kernel's
receive time, Linux's SO_TIMESTAMPNS: a loop busy with a thousand streams reads it late, and that delay is not
the client's), when the loop read it, and just before and just after writing each token (on loopback the token
reaches the client in between); ``GET /stamps`` returns them per ``X-Request-Id`` (or, without one, per the last
message's text).

One asyncio event loop and no threads: a stamp and its write happen in the same callback, so nothing
runs between them. (With a thread per stream, 128 streams fought over the GIL between stamp and
write, and the server's own clock was off by as much as the clients it judged.)
On Linux ``perf_counter`` is CLOCK_MONOTONIC, one clock for every process: a client compares
its own arrival stamps with these directly.

    python benchmarks/sse_server.py --ttft-ms 100 --gap-ms 20 --tokens 32
prints ``PORT <n>`` once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pytest_llmbench.http import arrival

SO_TIMESTAMPNS = arrival.SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def _clock_offset() -> int:
    """The wall clock (the kernel's stamps) less perf_counter_ns, from the tightest of a few readings."""
    readings = []
    for _ in range(20):
        before = time.perf_counter_ns()
        wall = time.time_ns()
        after = time.perf_counter_ns()
        readings.append((after - before, wall - (before + after) // 2))
    return min(readings)[1]


_CLOCK_OFFSET = _clock_offset()


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return b"data: " + data.encode() + b"\n\n"


def _chunked(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


def _prompt(body: bytes) -> str | None:
    """The last message's text: what a client that sends no X-Request-Id (the plugin) is matched by."""
    try:
        messages = json.loads(body).get("messages") or [{}]
        content = messages[-1].get("content")
    except (ValueError, AttributeError):
        return None
    return content if isinstance(content, str) else None


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "model": "schedule",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class ScheduleServer:
    def __init__(self, ttft_ms: float, gap_ms: float, tokens: int) -> None:
        self.ttft_ns = int(ttft_ms * 1e6)
        self.gap_ns = int(gap_ms * 1e6)
        self.tokens = tokens
        self.stamps: dict[str, dict[str, Any]] = {}

    async def connection(self, sock: socket.socket) -> None:
        """HTTP/1.1 keep-alive: requests one after another until the client closes."""
        loop = asyncio.get_running_loop()
        pending = b""
        with suppress(ConnectionError, ValueError), sock:
            while True:
                while b"\r\n\r\n" not in pending:
                    pending, arrived_ns = await _receive(loop, sock, pending)
                head, _, pending = pending.partition(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
                length = int(headers.get("content-length", 0))
                while len(pending) < length:
                    pending, arrived_ns = await _receive(loop, sock, pending)
                body, pending = pending[:length], pending[length:]
                if request_line.startswith("GET"):
                    data = json.dumps(self.stamps).encode()
                    await loop.sock_sendall(sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                                  b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
                else:
                    key = headers.get("x-request-id") or _prompt(body) or str(arrived_ns)
                    await self.stream(loop, sock, key, arrived_ns)

    async def stream(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, key: str, received_ns: int) -> None:
        sent: list[int] = []
        written: list[int] = []
        self.stamps[key] = {"received_ns": received_ns, "read_ns": time.perf_counter_ns(), "content_ns": sent,
                            "written_ns": written}
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        await loop.sock_sendall(sock, head + _chunked(_event(_chunk({"role": "assistant"}))))
        for i in range(self.tokens):
            due = received_ns + self.ttft_ns + i * self.gap_ns
            await asyncio.sleep(max(0, due - time.perf_counter_ns()) / 1e9)
            sent.append(time.perf_counter_ns())  # before the write: a loopback reader may wake inside it
            await loop.sock_sendall(sock, _chunked(_event(_chunk({"content": f" tok{i}"}))))
            written.append(time.perf_counter_ns())  # the token reached the client between the two
        usage = {"prompt_tokens": 5, "completion_tokens": self.tokens, "total_tokens": 5 + self.tokens}
        await loop.sock_sendall(sock, _chunked(_event(_chunk({}, "length")) + _event(
            {"object": "chat.completion.chunk", "choices": [], "usage": usage}) + _event("[DONE]")) + b"0\r\n\r\n")


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, pending: bytes) -> tuple[bytes, int]:
    """``pending`` and the next bytes, with ``perf_counter_ns`` when the kernel received them (Linux's
    SO_TIMESTAMPNS; the time of the read elsewhere): a request's time starts when it arrived, not when this
    loop got to it."""
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(65536, _ANCILLARY)
            break
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_reader(sock.fileno(), _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(sock.fileno())
    if not data:
        raise ConnectionError("the client closed the connection")
    arrived = time.perf_counter_ns()
    for level, kind, stamp in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(stamp)
            arrived = min(arrived, seconds * 1_000_000_000 + nanoseconds - _CLOCK_OFFSET)
    return pending + data, arrived


async def serve(args: argparse.Namespace) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a connection per stream: thousands of them
    schedule = ScheduleServer(args.ttft_ms, args.gap_ms, args.tokens)
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)  # thousands connect at once
    listener.setblocking(False)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    tasks = set()
    while True:
        sock, _ = await loop.sock_accept(listener)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if SO_TIMESTAMPNS is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        task = asyncio.create_task(schedule.connection(sock))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


@contextmanager
def launch(ttft_ms: float, gap_ms: float, tokens: int) -> Iterator[tuple[str, int]]:
    """The server in a process of its own (never competing for the client's GIL): its /v1 URL and port."""
    command = [sys.executable, str(Path(__file__).resolve()), "--ttft-ms", str(ttft_ms), "--gap-ms", str(gap_ms),
               "--tokens", str(tokens)]
    print("server:", " ".join(command), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline().split()[1])  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/v1", port
    finally:
        process.kill()
        process.wait()


def stamps(port: int) -> dict[str, Any]:
    """The server's stamps, per request (plain http.client: no proxy from the environment on the way)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/stamps")
        return json.loads(connection.getresponse().read())  # type: ignore[no-any-return]
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    with suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
