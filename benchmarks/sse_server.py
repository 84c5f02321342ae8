"""An OpenAI-style streaming chat server on a known schedule, to measure how well a client times it.

Each POST waits ``--ttft-ms`` after the request arrived, then sends ``--tokens`` one-token chunks
``--gap-ms`` apart (against an absolute schedule, so a late wake-up never accumulates), a usage
chunk and ``data: [DONE]``. The server records ``perf_counter_ns`` when a request's body is in, and just
before and just after writing each token (on loopback the token reaches the client in between); ``GET /stamps``
returns them per ``X-Request-Id`` (or, without one, per the last message's text).

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
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


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

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 keep-alive: requests one after another until the client closes."""
        with suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                received_ns = time.perf_counter_ns()
                if request_line.startswith("GET"):
                    data = json.dumps(self.stamps).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(data), data))
                else:
                    key = headers.get("x-request-id") or _prompt(body) or str(received_ns)
                    await self.stream(writer, key, received_ns)
                await writer.drain()
        writer.close()

    async def stream(self, writer: asyncio.StreamWriter, key: str, received_ns: int) -> None:
        sent: list[int] = []
        written: list[int] = []
        self.stamps[key] = {"received_ns": received_ns, "content_ns": sent, "written_ns": written}
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + _chunked(_event(_chunk({"role": "assistant"}))))
        for i in range(self.tokens):
            due = received_ns + self.ttft_ns + i * self.gap_ns
            await asyncio.sleep(max(0, due - time.perf_counter_ns()) / 1e9)
            sent.append(time.perf_counter_ns())  # before the write: a loopback reader may wake inside it
            writer.write(_chunked(_event(_chunk({"content": f" tok{i}"}))))
            written.append(time.perf_counter_ns())  # the token reached the client between the two
        usage = {"prompt_tokens": 5, "completion_tokens": self.tokens, "total_tokens": 5 + self.tokens}
        writer.write(_chunked(_event(_chunk({}, "length")) + _event({"object": "chat.completion.chunk",
                                                                     "choices": [], "usage": usage})
                              + _event("[DONE]")) + b"0\r\n\r\n")


async def serve(args: argparse.Namespace) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a connection per stream: thousands of them
    schedule = ScheduleServer(args.ttft_ms, args.gap_ms, args.tokens)
    server = await asyncio.start_server(schedule.connection, "127.0.0.1", 0, backlog=4096)  # thousands at once
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


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
