"""A small OpenAI-compatible server for plugin tests, on pytest-httpserver: real HTTP, scripted answers."""

from __future__ import annotations

import json
import math
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

from pytest_llmbench.collect.suite import SUITE_SUFFIX

MODEL = "stub-model"
CHARS = 4  # the stub tokenizer's characters per token
EMBED_DIMENSIONS = 64  # the stub's embeddings' length
CACHE_BLOCK = 16  # tokens: the stub's prefix cache matches whole blocks, as vLLM's does
VOCAB: dict[str, int] = {}  # chunk -> id, shared by every stub so that ids mean the same across servers


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
    delays: dict[str, float] = field(default_factory=dict)  # more seconds for a prompt containing the key
    active: int = 0  # requests being answered now (non-streamed answers)
    peak: int = 0  # the most ever answered at once (concurrent connections, one request each)
    answered: int = 0  # answers fully built and handed to the server
    loads: list[int] = field(default_factory=list)  # each answer's requests in flight at its arrival, itself included
    # Hold each answer until this many requests are in at once (a wave), or gather_timeout passes: ``peak`` then
    # counts what the client sends at once, however slow a busy machine makes each send.
    gather: int = 0
    gather_timeout: float = 10.0
    max_model_len: int = 0  # listed with each model when set, as vLLM lists its context length
    tokenizer: bool = False  # serve /tokenize and /detokenize (vLLM's shape) and count usage by their rule
    cached: set[tuple[int, ...]] = field(default_factory=set)  # prompt prefixes seen, CACHE_BLOCK tokens apart
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
            {"object": "list", "data": [{"id": m, "object": "model", "owned_by": self.owned_by,
                                         **({"max_model_len": self.max_model_len} if self.max_model_len else {})}
                                        for m in self.models]})
        httpserver.expect_request("/v1/completions", method="POST").respond_with_handler(self._answer)
        httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self._answer)
        httpserver.expect_request("/v1/embeddings", method="POST").respond_with_handler(self._embed)
        if self.tokenizer:
            httpserver.expect_request("/tokenize", method="POST").respond_with_handler(self._tokenize)
            httpserver.expect_request("/detokenize", method="POST").respond_with_handler(self._detokenize)
        url: str = httpserver.url_for("/v1")
        return url

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)
    # -- the tokenizer: one token per CHARS characters, ids from a vocabulary grown as chunks are first seen --

    def encode(self, text: str) -> list[int]:
        with self._lock:
            return [VOCAB.setdefault(text[i:i + CHARS], len(VOCAB)) for i in range(0, len(text), CHARS)]

    def _embed(self, request: Request) -> Response:
        """/v1/embeddings: each input's words hashed into ``dimensions`` buckets (EMBED_DIMENSIONS unless the body
        asks for fewer) and normalized, so texts that share words lie near each other; sent in reverse order,
        as a server may, with their ``index``. ``status`` and ``delay`` apply as to answers."""
        body = json.loads(request.get_data())
        with self._lock:
            self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers),
                                  "at": time.monotonic()})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        for key, code in self.status.items():
            if any(key in text for text in inputs):
                return Response(json.dumps({"error": {"message": f"scripted {code}", "type": "stub"}}),
                                status=code, content_type="application/json")
        time.sleep(self.delay)
        size = body.get("dimensions") or EMBED_DIMENSIONS
        data = [{"object": "embedding", "index": i, "embedding": embed_text(text, size)}
                for i, text in reversed(list(enumerate(inputs)))]
        tokens = sum(len(self.encode(text)) for text in inputs)
        return Response(json.dumps({"object": "list", "data": data, "model": body.get("model"),
                                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
                        content_type="application/json")

    def _tokenize(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers),
                              "at": time.monotonic()})
        tokens = self.encode(body["prompt"])
        return Response(json.dumps({"tokens": tokens, "count": len(tokens), "max_model_len": 1 << 20}),
                        content_type="application/json")

    def _detokenize(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.requests.append({"path": request.path, "body": body, "headers": dict(request.headers),
                              "at": time.monotonic()})
        chunks = {token: chunk for chunk, token in VOCAB.items()}
        return Response(json.dumps({"prompt": "".join(chunks[t] for t in body["tokens"])}),
                        content_type="application/json")

    def usage_of(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        """Usage by the tokenizer's rule: the prompt (a chat's message contents, no template), the answer's
        words (exactly max_tokens with ignore_eos), and the prompt's tokens already seen as cached_tokens."""
        prompt = body.get("prompt")
        if prompt is None:
            prompt = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        ids = tuple(self.encode(prompt))
        cached = 0
        with self._lock:
            for end in range(CACHE_BLOCK, len(ids) + 1, CACHE_BLOCK):
                if ids[:end] in self.cached:
                    cached = end
                self.cached.add(ids[:end])
        completion = len(text.split())
        return {"prompt_tokens": len(ids), "completion_tokens": completion, "total_tokens": len(ids) + completion,
                "prompt_tokens_details": {"cached_tokens": cached}}

    def _answer(self, request: Request) -> Response:
        arrived = time.monotonic()
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            load = self.active
            self.loads.append(load)
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
        if self.tokenizer and body.get("ignore_eos") and body.get("max_tokens"):
            text = " ".join(["word"] * body["max_tokens"])
        began = time.monotonic()
        if self.observer is not None:
            self.observer.begin()
        extra = next((seconds for key, seconds in self.delays.items() if key in question), 0.0)
        if self.delay or self.delay_per_active or extra:
            time.sleep(self.delay + self.delay_per_active * load + extra)
        chat = request.path.endswith("/chat/completions")
        if body.get("stream"):
            return Response(self._observed(self._stream(text, chat, body), began, len(text.split(" "))),
                            content_type="text/event-stream")
        self._observe_end(began, began, len(text.split()))
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                  if chat else {"index": 0, "text": text, "finish_reason": "stop"})
        payload: dict[str, Any] = {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                   "model": body.get("model"), "choices": [choice]}
        if self.usage:
            payload["usage"] = self.usage_of(body, text) if self.tokenizer else {
                "prompt_tokens": 7, "completion_tokens": len(text.split()), "total_tokens": 7 + len(text.split())}
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

    def _stream(self, text: str, chat: bool, body: dict[str, Any]) -> Iterator[bytes]:
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
            usage = self.usage_of(body, text) if self.tokenizer else {
                "prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"


def embed_text(text: str, size: int) -> list[float]:
    """The stub's embedding: a unit vector of word counts hashed (stably: crc32) into ``size`` buckets."""
    vector = [0.0] * size
    for word in text.lower().split():
        vector[zlib.crc32(word.strip(".,!?").encode()) % size] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def write_suite(where: Path, tests: Sequence[dict[str, Any]], *, complete: bool = True, **top: Any) -> Path:
    """Write a suite file and return its path: ``where`` is the file, or a folder to hold suite.llmbench.json.

    ``complete`` gives each test the required fields it leaves out (id, name, category, a prompt); the suite
    validation tests pass False to write exactly the tests they give. ``top`` adds top-level keys (defaults, ...).
    """
    path = where / f"suite{SUITE_SUFFIX}" if where.is_dir() else where
    full = []
    for n, test in enumerate(tests):
        entry = {"id": f"t{n}", "name": f"Test {n}", "category": "general", **test} if complete else test
        if complete and not {"prompt", "messages", "turns", "input", "query", "documents"} & entry.keys():
            entry["prompt"] = f"prompt {n}"
        full.append(entry)
    path.write_text(json.dumps({"test_suite_id": top.pop("test_suite_id", "s"), **top, "tests": full}),
                    encoding="utf-8")
    return path
