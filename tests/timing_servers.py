"""A real HTTP server on 127.0.0.1 that answers like llama.cpp, vLLM, TGI or SGLang tell their per-request times.

It keeps a real queue (``slots`` requests run at once; the others wait for a slot), times each request on its own
clock (arrival, scheduled, first token, last token) and reports that split in the shape of the server it plays:
llama.cpp's ``timings``, vLLM's ``metrics`` (only when the request carries ``include_metrics``), TGI's ``x-*``
headers (whole ms, on JSON answers only) or SGLang's ``meta_info``. ``truth`` keeps, per request, the seconds it
reported, so a test can compare the client's fields with the server's own figures. ``tamper`` replaces reported
values (a hostile or broken server): ``{"queue_time_ms": -5}``, or for TGI ``{"x-queue-time": "soon"}``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pytest_llmbench.http.client import ClientConfig, LLMClient

SHAPES = ("llama.cpp", "vllm", "tgi", "sglang")


@dataclass
class TimingServer:
    shape: str
    prefill_s: float = 0.02
    token_gap_s: float = 0.005
    tokens: int = 5
    slots: int = 1
    reasoning_s: float = 0.0  # seconds of reasoning chunks before the answer (a thinking model)
    reasoning_usage: int | None = None  # report this as usage.completion_tokens_details.reasoning_tokens
    tamper: dict[str, Any] = field(default_factory=dict)
    truth: list[dict[str, float]] = field(default_factory=list)  # per request: the split it reported, seconds
    received: list[dict[str, Any]] = field(default_factory=list)  # per request: headers and body

    def __post_init__(self) -> None:
        assert self.shape in SHAPES
        self._slots = threading.Semaphore(self.slots)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small writes leave at once (no 40 ms wait for a delayed ACK)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "timing-model", "object": "model"}]}, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                arrived = time.perf_counter()  # the whole request is in: the server's clock starts
                with server._lock:
                    server.received.append({"headers": dict(self.headers), "body": body})
                server._answer(self, body, arrived)

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- answering ----------------------------------------------------------------------------------------

    def _answer(self, handler: Any, body: dict[str, Any], arrived: float) -> None:
        chat = handler.path.endswith("/chat/completions")
        with self._slots:
            scheduled = time.perf_counter()
            if body.get("stream"):
                self._stream(handler, body, chat, arrived, scheduled)
            else:
                pieces: list[str] = []
                stamps = self._generate(arrived, scheduled, lambda piece, kind: pieces.append(piece)
                                        if kind == "reasoning" else None)
                choice = _choice(self._text(), chat)
                if chat and pieces:
                    choice["message"]["reasoning_content"] = "".join(pieces)
                payload = {"id": "x", "object": "chat.completion" if chat else "text_completion",
                           "choices": [choice], "usage": self._usage(len(pieces))}
                headers = self._report(payload, stamps, body)
                handler._send(200, payload, headers)

    def _generate(self, arrived: float, scheduled: float, emit: Any) -> dict[str, float]:
        """Prefill, think (reasoning pieces), then decode the answer on the server's clock, handing each piece to
        ``emit``; the first token is the first piece of either kind."""
        time.sleep(self.prefill_s)
        first = time.perf_counter()
        think_until = first + self.reasoning_s
        while self.reasoning_s and (now := time.perf_counter()) < think_until:
            emit("thinking ", "reasoning")
            time.sleep(min(0.02, max(0.0, think_until - now)))
        first_answer = time.perf_counter()
        emit("w0", "content")
        for n in range(1, self.tokens):
            time.sleep(self.token_gap_s)
            emit(f" w{n}", "content")
        last = time.perf_counter()
        return {"arrived": arrived, "scheduled": scheduled, "first": first, "last": last,
                "first_answer": first_answer}

    def _stream(self, handler: Any, body: dict[str, Any], chat: bool, arrived: float, scheduled: float) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(data: dict[str, Any] | str) -> None:
            line = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()

        thoughts = []

        def emit(piece: str, kind: str) -> None:
            if kind == "reasoning":
                thoughts.append(piece)
            if chat:
                delta = {"reasoning_content": piece} if kind == "reasoning" else {"content": piece}
                send({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            elif kind == "content":
                send({"choices": [{"index": 0, "text": piece, "finish_reason": None}]})

        stamps = self._generate(arrived, scheduled, emit)
        last: dict[str, Any] = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"} if chat else
                                            {"index": 0, "text": "", "finish_reason": "stop"}]}
        usage: dict[str, Any] = {"choices": [], "usage": self._usage(len(thoughts))}
        self._report(last if self.shape in ("llama.cpp", "sglang") else usage, stamps, body)
        send(last)
        send(usage)
        send("[DONE]")
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def _report(self, target: dict[str, Any], stamps: dict[str, float], body: dict[str, Any]) -> dict[str, str]:
        """Put the split on ``target`` (or into headers, for TGI) as the server it plays does; keep the truth."""
        queue = stamps["scheduled"] - stamps["arrived"]
        prefill = stamps["first"] - stamps["scheduled"]
        decode = stamps["last"] - stamps["first"]
        truth = {"queue_time": queue, "prefill_time": prefill, "decode_time": decode,
                 "server_ttft": queue + prefill, "server_e2e_latency": queue + prefill + decode,
                 "answer_after_first": stamps["first_answer"] - stamps["first"]}
        headers: dict[str, str] = {}
        if self.shape == "llama.cpp":
            target["timings"] = {"prompt_n": 7, "prompt_ms": prefill * 1e3, "predicted_n": self.tokens,
                                 "predicted_ms": decode * 1e3, "cache_n": 0, **self.tamper}
        elif self.shape == "vllm" and body.get("include_metrics"):
            target["metrics"] = {"time_to_first_token_ms": prefill * 1e3, "generation_time_ms": decode * 1e3,
                                 "queue_time_ms": queue * 1e3, "mean_itl_ms": None, "tokens_per_second": None,
                                 **self.tamper}
        elif self.shape == "sglang":
            target["meta_info"] = {"prompt_tokens": 7, "completion_tokens": self.tokens, "cached_tokens": 0,
                                   "queue_time": queue, "e2e_latency": queue + prefill + decode, **self.tamper}
        elif self.shape == "tgi":  # a stream's headers are gone by now: only JSON answers carry these
            total = int((time.perf_counter() - stamps["arrived"]) * 1e3)  # whole ms, as TGI's router writes them
            headers = {"x-queue-time": str(int(queue * 1e3)), "x-inference-time": str(int((prefill + decode) * 1e3)),
                       "x-validation-time": "0", "x-total-time": str(total), **self.tamper}
            truth.update(queue_time=int(queue * 1e3) / 1e3, server_e2e_latency=total / 1e3)
        with self._lock:
            self.truth.append(truth)
        return headers

    def _text(self) -> str:
        return "w0" + "".join(f" w{n}" for n in range(1, self.tokens))

    def _usage(self, thoughts: int = 0) -> dict[str, Any]:
        """Usage as OpenAI sends it; reasoning pieces count as completion tokens (``reasoning_usage``: told apart)."""
        completion = self.tokens + thoughts
        usage: dict[str, Any] = {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}
        if self.reasoning_usage is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_usage}
        return usage


def _choice(text: str, chat: bool) -> dict[str, Any]:
    if chat:
        return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return {"index": 0, "text": text, "finish_reason": "stop"}


@contextlib.contextmanager
def client(url: str, **config: Any) -> Iterator[LLMClient]:
    """A client for these servers: no retries, their one model."""
    llm = LLMClient(ClientConfig(endpoint=url, retries=0, **config), model="timing-model")
    try:
        yield llm
    finally:
        llm.close()


def serving(shape: str, **options: Any) -> Iterator[TimingServer]:
    """A fixture body: the server for one test, closed after it."""
    server = TimingServer(shape, **options)
    try:
        yield server
    finally:
        server.close()
