"""What one reading thread for every stream would give, measured beside today's thread per stream (issue 23,
point 2): a probe for the design, not a client.

Both sides drive the same schedule server (sse_server.py) with N streams in flight, closed loop, and time
tokens with the same kernel stamps, SSE parser and ``EventClock`` (the rule that marks a stream whose tokens were
read together). The threaded side is the plugin's own client on the dispatcher, as a load run uses it (without
pytest). The loop side is one ``selectors`` thread that sends each request and reads every socket with
``recvmsg`` (HTTP/1.1 chunked, keep-alive; nothing else: no retries, deadlines, caps or redaction). Printed per
side: requests, share marked, TTFT error against the server's stamps (unmarked), and the CPU seconds used.

    python benchmarks/reader_loop_probe.py --streams 1024 --requests 2048 --ttft-ms 500 --gap-ms 50 --tokens 16
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from sse_server import launch, stamps

from pytest_llmbench.http import arrival
from pytest_llmbench.http.client import ClientConfig, LLMClient
from pytest_llmbench.http.events import SSEParser
from pytest_llmbench.http.timing import EventClock
from pytest_llmbench.session.load.dispatcher import Dispatcher, Ticket, open_files_for
from pytest_llmbench.session.load.plan import Level

_TIMESPEC = struct.Struct("@ll")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


@dataclass
class _Stream:
    """One connection's current request, read by the loop."""

    sock: socket.socket
    prompt: str = ""
    sent_ns: int = 0
    reads: int = 0
    buffer: bytes = b""
    in_body: bool = False
    chunk_left: int = -1  # bytes left of the current chunk; -1: a size line is next, -2: the chunk's CRLF
    parser: SSEParser = field(default_factory=SSEParser)
    clock: EventClock | None = None
    first_ns: int | None = None


def _request(prompt: str) -> bytes:
    body = json.dumps({"model": "schedule", "stream": True, "messages": [{"role": "user", "content": prompt}]})
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def _body_bytes(stream: _Stream) -> tuple[bytes, bool]:
    """The SSE bytes in the buffer (chunked framing taken off), and whether the body ended."""
    out = []
    while True:
        if stream.chunk_left == -2:  # waiting for a chunk's CRLF
            if len(stream.buffer) < 2:
                return b"".join(out), False
            stream.buffer, stream.chunk_left = stream.buffer[2:], -1
        if stream.chunk_left == -1:
            line, found, rest = stream.buffer.partition(b"\r\n")
            if not found:
                return b"".join(out), False
            size = int(line.split(b";")[0], 16)
            if size == 0:
                return b"".join(out), True
            stream.buffer, stream.chunk_left = rest, size
        take = stream.buffer[: stream.chunk_left]
        out.append(take)
        stream.buffer = stream.buffer[len(take):]
        stream.chunk_left -= len(take)
        if stream.chunk_left:
            return b"".join(out), False
        stream.chunk_left = -2


def loop_side(port: int, streams: int, requests: int, offset: int) -> list[dict[str, Any]]:
    """One selector thread: each stream's next request goes out as its last one ends."""
    open_files_for(streams)
    wall_offset = time.time_ns() - time.perf_counter_ns()
    selector = selectors.DefaultSelector()
    results: list[dict[str, Any]] = []
    issued = 0

    def send(stream: _Stream) -> None:
        nonlocal issued
        stream.prompt, issued = f"stream {offset + issued}", issued + 1
        stream.buffer, stream.in_body, stream.chunk_left, stream.parser = b"", False, -1, SSEParser()
        stream.sent_ns, stream.first_ns = time.perf_counter_ns(), None
        stream.clock = EventClock(stream.sent_ns)
        stream.sock.sendall(_request(stream.prompt))

    for _ in range(min(streams, requests)):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, arrival.SO_TIMESTAMPNS or 35, 1)
        stream = _Stream(sock)
        selector.register(sock, selectors.EVENT_READ, stream)
        send(stream)
    while len(results) < requests:
        for key, _ in selector.select():
            stream = key.data
            data, ancillary, _, _ = stream.sock.recvmsg(65536, _ANCILLARY)
            stamp = time.perf_counter_ns()
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == arrival.SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(raw)
                    stamp = min(stamp, seconds * 1_000_000_000 + nanoseconds - wall_offset)
            stream.reads += 1
            stream.buffer += data
            if not stream.in_body:
                _, found, rest = stream.buffer.partition(b"\r\n\r\n")
                if not found:
                    continue
                stream.buffer, stream.in_body = rest, True
            payload, ended = _body_bytes(stream)
            assert stream.clock is not None
            now = stream.clock.read((stream.reads, stamp))
            for event in stream.parser.feed(payload):
                text = event != "[DONE]" and bool((json.loads(event).get("choices") or [{}])[0].get("delta", {})
                                                  .get("content"))
                if text and stream.first_ns is None:
                    stream.first_ns = now
                stream.clock.event(text=text)
            stream.clock.parsed(stream.parser.pending)
            if ended:
                results.append({"prompt": stream.prompt, "ttft": (stream.first_ns or now) - stream.sent_ns,
                                "degraded": stream.clock.degraded is not None})
                if issued < requests:
                    send(stream)
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return results


def thread_side(url: str, streams: int, requests: int, offset: int) -> list[dict[str, Any]]:
    """The plugin's client on the dispatcher's threads, as a load run sends."""
    client = LLMClient(ClientConfig(endpoint=url, timeout=300, connections=streams), model="schedule")
    dispatcher = Dispatcher(client.send, threads=streams)
    level = Level(concurrency=streams, rate=math.inf)
    tickets = [Ticket(key=f"stream {offset + n}", api_type="chat", body={
        "model": "schedule", "stream": True, "messages": [{"role": "user", "content": f"stream {offset + n}"}]},
        phase=0, level=level) for n in range(requests)]
    dispatcher.add(tickets)
    results = []
    for ticket in tickets:
        dispatcher.take(ticket.key)
        result = ticket.answer
        results.append({"prompt": ticket.key, "ttft": int((result.ttft or 0) * 1e9),
                        "degraded": result.timing_degraded})
    dispatcher.stop()
    client.close()
    return results


def report(label: str, results: list[dict[str, Any]], server: dict[str, Any], cpu_s: float) -> None:
    errors = sorted((r["ttft"] - (server[r["prompt"]]["content_ns"][0] - server[r["prompt"]]["received_ns"])) / 1e6
                    for r in results if not r["degraded"])
    marked = sum(r["degraded"] for r in results)

    def pct(q: float) -> float:
        return errors[min(len(errors) - 1, int(len(errors) * q / 100))] if errors else float("nan")

    print(f"  {label:<24} {len(results)} requests, {100 * marked / len(results):5.1f} % marked, TTFT error "
          f"(unmarked) p50 {pct(50):+.2f} ms p99 {pct(99):+.2f} ms, CPU {cpu_s:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=2048)
    parser.add_argument("--ttft-ms", type=float, default=500)
    parser.add_argument("--gap-ms", type=float, default=50)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    print("command:", " ".join([sys.executable, *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with launch(args.ttft_ms, args.gap_ms, args.tokens) as (url, port):
        for label, side, offset in (("thread per stream", thread_side, 0),
                                    ("one reading loop", lambda u, s, r, o: loop_side(port, s, r, o), 10**6)):
            before = resource.getrusage(resource.RUSAGE_SELF)
            results = side(url, args.streams, args.requests, offset)
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            report(label, results, stamps(port), cpu)
    print(f"machine after: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
