"""A small OpenAI-compatible server for plugin tests, on pytest-httpserver: real HTTP, scripted answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

from pytest_llmbench.collect.suite import SUITE_SUFFIX

MODEL = "stub-model"


@dataclass
class OpenAIStub:
    """Answers /v1/models, /v1/completions and /v1/chat/completions; records every request body.

    ``answers`` maps a substring of the prompt (or last message) to the answer text; ``delay`` is
    seconds before each answer; ``status`` maps a substring to an HTTP error status.
    """

    answers: dict[str, str] = field(default_factory=dict)
    default_answer: str = "stub answer"
    delay: float = 0.0
    status: dict[str, int] = field(default_factory=dict)
    usage: bool = True
    token_gap: float = 0.0  # seconds between streamed chunks
    break_stream: bool = False  # end streams after the first chunk, without [DONE]
    models: tuple[str, ...] = (MODEL,)
    observer: Any = None  # told of each answer: begin() then end(prompt_tokens, completion_tokens, ttft, seconds)
    owned_by: str = "stub"  # what GET /v1/models says owns each model ("vllm" on vLLM)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_per_active: float = 0.0  # more seconds per request in flight: a server that slows under load
    active: int = 0  # requests being answered now (non-streamed answers)
    peak: int = 0  # the most ever answered at once (concurrent connections, one request each)
    answered: int = 0  # answers fully built and handed to the server
    # Hold each answer until this many requests are in at once (a wave), or gather_timeout passes: ``peak`` then
    # counts what the client sends at once, however slow a busy machine makes each send.
    gather: int = 0
    gather_timeout: float = 10.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waves: int = 0
    url: str = ""  # its /v1 base, once installed on a server (conftest's fixtures set it)
    exporter: Any = None  # metrics_stub: the Prometheus exporter its answers move
    authorizations: list[str | None] = field(default_factory=list)  # metrics_stub: each scrape's Authorization

    def _gather(self) -> None:
        """Called with the lock held: the request that completes a wave releases it, the others wait for it."""
        if self.active >= self.gather:
            self._waves += 1
            self._arrived.notify_all()
        else:
            wave = self._waves
            self._arrived.wait_for(lambda: self._waves != wave, timeout=self.gather_timeout)

    def install(self, httpserver: Any) -> str:
        httpserver.expect_request("/v1/models").respond_with_json(
            {"object": "list", "data": [{"id": m, "object": "model", "owned_by": self.owned_by} for m in self.models]})
        httpserver.expect_request("/v1/completions", method="POST").respond_with_handler(self._answer)
        httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self._answer)
        url: str = httpserver.url_for("/v1")
        return url

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def _answer(self, request: Request) -> Response:
        arrived = time.monotonic()
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            load = self.active
            if self.gather:
                self._gather()
        try:
            return self._reply(request, load, arrived)
        finally:
            with self._lock:
                self.active -= 1
                self.answered += 1

    def _reply(self, request: Request, load: int, arrived: float) -> Response:
        body = json.loads(request.get_data())
        with self._lock:
            self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers),
                                  "at": arrived})
        question = body.get("prompt") or (body.get("messages") or [{}])[-1].get("content", "")
        for key, code in self.status.items():
            if key in question:
                return Response(json.dumps({"error": {"message": f"scripted {code}", "type": "stub"}}),
                                status=code, content_type="application/json")
        text = next((a for k, a in self.answers.items() if k in question), self.default_answer)
        began = time.monotonic()
        if self.observer is not None:
            self.observer.begin()
        if self.delay or self.delay_per_active:
            time.sleep(self.delay + self.delay_per_active * load)
        chat = request.path.endswith("/chat/completions")
        if body.get("stream"):
            return Response(self._observed(self._stream(text, chat), began, len(text.split(" "))),
                            content_type="text/event-stream")
        self._observe_end(began, began, len(text.split()))
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if chat else {"index": 0, "text": text, "finish_reason": "stop"})
        payload: dict[str, Any] = {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                   "model": body.get("model"), "choices": [choice]}
        if self.usage:
            payload["usage"] = {"prompt_tokens": 7, "completion_tokens": len(text.split()),
                                "total_tokens": 7 + len(text.split())}
        return Response(json.dumps(payload), content_type="application/json")


    def _observe_end(self, began: float, first: float, tokens: int) -> None:
        if self.observer is not None:
            now = time.monotonic()
            self.observer.end(7, tokens, first - began if first > began else now - began, now - began)

    def _observed(self, chunks: Iterator[bytes], began: float, tokens: int) -> Iterator[bytes]:
        first = began
        for n, chunk in enumerate(chunks):
            if n == 0:
                first = time.monotonic()
            yield chunk
        self._observe_end(began, first, tokens)

    def _stream(self, text: str, chat: bool) -> Iterator[bytes]:
        words = text.split(" ")
        for n, word in enumerate(words):
            piece = word if n == 0 else " " + word
            delta = {"delta": {"content": piece}} if chat else {"text": piece}
            finish = "stop" if n == len(words) - 1 else None  # as real servers end a whole answer
            yield f"data: {json.dumps({'choices': [{'index': 0, **delta, 'finish_reason': finish}]})}\n\n".encode()
            if self.break_stream:
                return
            time.sleep(self.token_gap)
        if self.usage:
            usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"


def write_suite(where: Path, tests: Sequence[dict[str, Any]], *, complete: bool = True, **top: Any) -> Path:
    """Write a suite file and return its path: ``where`` is the file, or a folder to hold suite.llmbench.json.

    ``complete`` gives each test the required fields it leaves out (id, name, category, a prompt); the suite
    validation tests pass False to write exactly the tests they give. ``top`` adds top-level keys (defaults, ...).
    """
    path = where / f"suite{SUITE_SUFFIX}" if where.is_dir() else where
    full = []
    for n, test in enumerate(tests):
        entry = {"id": f"t{n}", "name": f"Test {n}", "category": "general", **test} if complete else test
        if complete and "prompt" not in entry and "messages" not in entry:
            entry["prompt"] = f"prompt {n}"
        full.append(entry)
    path.write_text(json.dumps({"test_suite_id": top.pop("test_suite_id", "s"), **top, "tests": full}),
                    encoding="utf-8")
    return path
