"""A scriptable, misbehaving HTTP server on 127.0.0.1 for tests of the client and the plugin.

pytest-httpserver answers politely; the client exists for servers that do not: that stall, trickle a
byte a second, hang up mid-body, redirect, or stream chunks with pauses. ``FaultServer`` plays each
reply from a script, one per request, and records what it received.

    server.reply(Reply(503), Reply.json({"choices": [...]}))   # first request 503, then 200
    server.always(Reply.json(models), path="/v1/models")      # every request to that path
    server.received[0].json                                   # the first request body, parsed

A request takes, in order: the next reply queued for its path, the ``always`` reply for its path,
the next reply queued for any path, the ``always`` reply for any path (by default a 500 saying
nothing was scripted, so a stray request cannot pass unnoticed). One exception: a GET of ``/metrics`` that
nothing was scripted for gets a 404 and is counted in ``metrics_probes``, not ``received`` (the plugin looks
for Prometheus metrics beside every endpoint once; see tests/prometheus_exporter.py for a real exporter).

Hostile servers are scripted the same way: ``Reply.gzip_bomb`` (a small body that inflates to a huge one),
``Reply.endless_sse`` (an event stream that never ends), ``Reply(echo=...)`` (a reply built from the request,
e.g. one quoting the key it was sent) and ``unanswered_url()`` (an address whose connect never completes).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pytest_llmbench.http.client import ClientConfig, LLMClient


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None  # dict and list are sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    header_trickle: float = 0.0  # seconds between the bytes of the status line and headers, sent one at a time
    trickle: float = 0.0  # seconds between body bytes, sent one at a time
    cut_after: int | None = None  # hang up after this many body bytes (Content-Length promises all)
    hang_up: bool = False  # close the connection without answering at all
    chunks: Iterable[bytes | str | tuple[float, bytes | str]] | None = None  # chunked body; (delay, data) pauses
    hold_end: float = 0.0  # seconds between the last chunk and the chunked body's terminator
    chunked: bool = True  # for chunks: False sends them raw, no length, Connection: close (the socket ends the body)
    break_off: bool = False  # for chunks: announce one more chunk, send half of it and drop the connection
    echo: Callable[[Received], Reply] | None = None  # build the real reply from the request (e.g. quote its key)

    @classmethod
    def json(cls, data: Any, status: int = 200, **options: Any) -> Reply:
        return cls(status, data, **options)

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Reply:
        return cls(status, b"", {"Location": location})

    @classmethod
    def sse(cls, events: Iterable[dict[str, Any] | str], gap: float = 0.0, done: bool = True) -> Reply:
        """An event stream: each event a ``data:`` line, ``gap`` seconds apart, then ``[DONE]``."""
        lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
        lines += ["data: [DONE]\n\n"] if done else []
        return cls(200, chunks=[(gap, line) for line in lines], headers={"Content-Type": "text/event-stream"})

    @classmethod
    def gzip_bomb(cls, inflated: int, head: bytes = b"", tail: bytes = b"", fill: bytes = b"a") -> Reply:
        """A gzip body of about inflated/1000 bytes that inflates to ``head + fill * n + tail`` (``inflated``
        bytes in all); compressed piece by piece, so making a 1 GiB bomb holds 1 MB, not 1 GiB."""
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
        parts = [packer.compress(head)]
        block = fill * (2**20 // len(fill))
        left = inflated - len(head) - len(tail)
        while left > 0:
            parts.append(packer.compress(block[:left]))
            left -= len(block)
        parts += [packer.compress(tail), packer.flush()]
        return cls(200, b"".join(parts), {"Content-Encoding": "gzip", "Content-Type": "application/json"})

    @classmethod
    def endless_sse(cls, text: str = "word ", gap: float = 0.0) -> Reply:
        """An event stream that never ends: the same text chunk forever, ``gap`` seconds apart, no [DONE]."""
        event = "data: " + json.dumps({"choices": [{"index": 0, "text": text, "delta": {"content": text}}]}) + "\n\n"
        return cls(200, chunks=((gap, event) for _ in itertools.count()), headers={"Content-Type": "text/event-stream"})

    def payload(self) -> bytes:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body or b""

    def content_type(self) -> str:
        if self.chunks is not None:
            return "text/event-stream"
        return "application/json" if isinstance(self.body, (dict, list)) else "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    client_port: int  # the same port twice means the client reused its connection
    at: float = 0.0  # time.time() when the request was read: the server's own clock, to compare with file times

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


# Ordinary answers and errors, for tests that need the server to say something typical.
COMPLETION = {"id": "c1", "object": "text_completion", "model": "m",
              "choices": [{"index": 0, "text": "Paris", "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
CHAT = {"id": "c2", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
OVERLOADED = {"error": {"message": "model overloaded", "type": "ServiceUnavailableError", "code": 503}}

def client_for(url: str, model: str | None = "m", **config: Any) -> LLMClient:
    """A client for a fault server: fast retries and a short deadline unless the test says otherwise."""
    return LLMClient(ClientConfig(url, **{"retries": 3, "retry_delay": 0.01, "timeout": 5.0, **config}), model=model)


UNSCRIPTED = Reply(500, {"error": {"message": "fault server: no reply scripted", "type": "test_setup"}})


class FaultServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.metrics_probes = 0
        self.chunk_ns: list[int] = []  # perf_counter_ns before each chunk of the latest streamed reply
        self.cert: Path | None = None  # a TLS server's certificate, for the client to trust (tests set it)
        self._scripts: dict[str | None, deque[Reply]] = {}
        self._fallback: dict[str | None, Reply] = {None: UNSCRIPTED}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fault = self
        if ssl_context is not None:
            # The handshake then happens in the handler thread, so a client that rejects the
            # certificate cannot stall the accept loop.
            self._httpd.socket = ssl_context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="fault-server",
                                        daemon=True)  # a short poll interval makes stop() quick

    def url_for(self, path: str) -> str:
        return self.url + path

    def reply(self, *replies: Reply, path: str | None = None) -> FaultServer:
        """Queue replies, used one per request in order (for ``path`` only, when given)."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)
        return self

    def always(self, reply: Reply, path: str | None = None) -> FaultServer:
        """The reply once the script has run out (for ``path`` only, when given)."""
        with self._lock:
            self._fallback[path] = reply
        return self

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def connections(self) -> int:
        """How many connections the requests so far came on (each has its own client port)."""
        return len({r.client_port for r in self.received})

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes replies that are waiting or trickling
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answers_metrics(self, method: str, path: str) -> bool:
        """The plugin's one look for /metrics, unscripted: not a request the test is about."""
        with self._lock:
            unscripted = not self._scripts.get(path) and path not in self._fallback
            if method == "GET" and path == "/metrics" and unscripted:
                self.metrics_probes += 1
                return True
        return False

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            if self._scripts.get(path):
                return self._scripts[path].popleft()
            if path in self._fallback:
                return self._fallback[path]
            if self._scripts.get(None):
                return self._scripts[None].popleft()
            return self._fallback[None]

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; True when it is."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fault: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up or reject the certificate: tests provoke exactly that."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as real LLM servers speak
    timeout = 10  # an idle keep-alive connection gives up its thread after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read ``FaultServer.received`` instead."""

    def _serve(self) -> None:
        fault = self.server.fault  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        if fault._answers_metrics(self.command, path):
            self._send(fault, Reply(404, "no metrics here"))
            return
        fault._record(Received(self.command, path, headers, self.rfile.read(length), self.client_address[1],
                               time.time()))
        reply = fault._next_reply(path)
        if reply.chunks is not None:
            fault.chunk_ns = []
        if reply.echo is not None:
            reply = reply.echo(fault.received[-1])
        if fault._pause(reply.delay) or reply.hang_up:
            self.close_connection = True
            return
        try:
            self._send(fault, reply)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True  # the client gave up: what the fault was for

    def _send(self, fault: FaultServer, reply: Reply) -> None:
        self.send_response(reply.status)
        headers = {"Content-Type": reply.content_type(), **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if reply.chunks is not None:
            self._send_chunks(fault, reply)
            return
        payload = reply.payload()
        self.send_header("Content-Length", str(len(payload)))
        if self._end_headers(fault, reply):
            return
        if reply.cut_after is not None:
            self.wfile.write(payload[: reply.cut_after])
            self.close_connection = True
        elif reply.trickle:
            for offset in range(len(payload)):
                self.wfile.write(payload[offset : offset + 1])
                self.wfile.flush()
                if fault._pause(reply.trickle):
                    return
        else:
            self.wfile.write(payload)

    def _send_chunks(self, fault: FaultServer, reply: Reply) -> None:
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        if self._end_headers(fault, reply):
            return
        for item in reply.chunks or ():
            gap, data = item if isinstance(item, tuple) else (0.0, item)
            data = data.encode() if isinstance(data, str) else data
            if fault._pause(gap):
                return
            fault.chunk_ns.append(time.perf_counter_ns())  # just before the write, as a server stamps its tokens
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if reply.chunked else data)
            self.wfile.flush()
        if reply.break_off:
            self.wfile.write(b'64\r\ndata: {"choi')
            self.close_connection = True
        elif reply.chunked and not fault._pause(reply.hold_end):
            self.wfile.write(b"0\r\n\r\n")

    def _end_headers(self, fault: FaultServer, reply: Reply) -> bool:
        """Send the status line and headers, a byte at a time with ``header_trickle``; True when stopping."""
        if not reply.header_trickle:
            self.end_headers()
            return False
        self.send_header("Connection", "close")  # the client gives up in the middle: nothing to reuse
        self.close_connection = True
        head = b"".join(self._headers_buffer) + b"\r\n"  # what end_headers would send in one write
        self._headers_buffer: list[bytes] = []
        for offset in range(len(head)):
            self.wfile.write(head[offset : offset + 1])
            self.wfile.flush()
            if fault._pause(reply.header_trickle):
                return True
        return False


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made with the openssl CLI; the certificate is its own CA."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextlib.contextmanager
def unanswered_url() -> Iterator[str]:
    """A URL on 127.0.0.1 whose connect never completes: a listening socket whose backlog is full, so the
    kernel drops every further SYN, as a firewall or a dead host does."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(socket.socket())
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(4):  # more than the backlog holds
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def refusing_url() -> Iterator[str]:
    """A URL on 127.0.0.1 that refuses connections: its port stays bound but never listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
