"""An OpenAI-style streaming chat server on a known schedule, to measure how well a client times it.

Each POST waits ``--ttft-ms`` after the request arrived, then sends ``--tokens`` one-token chunks
``--gap-ms`` apart (against an absolute schedule, so sleep overshoot never accumulates), a usage
chunk and ``data: [DONE]``. Python's sleep still wakes late now and then, so the server records
``perf_counter_ns`` just before writing each token; ``GET /stamps`` returns them per ``X-Request-Id`` (or,
without one, per the last message's text).
On Linux ``perf_counter`` is CLOCK_MONOTONIC, one clock for every process: the client compares
its own arrival stamps with these directly.

    python benchmarks/sse_server.py --ttft-ms 100 --gap-ms 20 --tokens 32
prints ``PORT <n>`` once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScheduleServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 128 streams at once connect together

    def __init__(self, ttft_ms: float, gap_ms: float, tokens: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ttft_ns = int(ttft_ms * 1e6)
        self.gap_ns = int(gap_ms * 1e6)
        self.tokens = tokens
        self.stamps: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return b"data: " + data.encode() + b"\n\n"


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScheduleServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received_ns = time.perf_counter_ns()
        sent: list[int] = []
        with self.server.lock:
            self.server.stamps[self.headers.get("X-Request-Id") or _prompt(body) or str(received_ns)] = {
                "received_ns": received_ns, "content_ns": sent}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._send(_event(_chunk({"role": "assistant"})))
        for i in range(self.server.tokens):
            due = received_ns + self.server.ttft_ns + i * self.server.gap_ns
            time.sleep(max(0, due - time.perf_counter_ns()) / 1e9)
            sent.append(time.perf_counter_ns())  # before the write: a loopback reader may wake inside it
            self._send(_event(_chunk({"content": f" tok{i}"})))
        usage = {"prompt_tokens": 5, "completion_tokens": self.server.tokens,
                 "total_tokens": 5 + self.server.tokens}
        self._send(_event(_chunk({}, "length")) + _event({"object": "chat.completion.chunk", "choices": [],
                                                          "usage": usage}) + _event("[DONE]"))
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        with self.server.lock:
            body = json.dumps(self.server.stamps).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, piece: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    server = ScheduleServer(args.ttft_ms, args.gap_ms, args.tokens)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
