"""A fast OpenAI-compatible server for the benchmarks, and the helpers that drive it from another process.

One asyncio protocol, no framework: HTTP/1.1 keep-alive, pre-built response bytes, so that the server
costs far less per request than any client it measures. A delay is a timer (``call_later``), not a
sleeping thread, so any number of delayed requests overlap. Each completion request's arrival and
answer are stamped with ``perf_counter_ns`` (CLOCK_MONOTONIC on Linux: one clock for every process),
and its arrival with the client's port, which tells keep-alive clients (xdist workers) apart;
``GET /stamps`` returns them and ``GET /stamps?reset=1`` also clears them.

With ``--delay-per-other-ms K`` each answer waits ``--delay-ms`` plus K ms for every other completion request in
flight when it arrives (by the server's own count): a server that slows under load in a known way, so the highest
load within a latency limit is known (the capacity benchmark). A request whose body asks ``"stream": true`` gets the
same answer as one SSE event (a chunk with the text and usage, then ``[DONE]``), for peers that only stream.

With ``--tokenizer`` it also serves ``/tokenize`` and ``/detokenize`` (vLLM's shape; one token per 4 characters)
and answers completions with usage by that rule: the prompt's tokens, and exactly ``max_tokens`` words when the
request says ``ignore_eos`` (the workload benchmarks judge lengths by it).

    python benchmarks/openai_server.py --delay-ms 200 --answer-bytes 8192
prints ``PORT <n>`` once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "bench-model"
EMBEDDING_DIMENSIONS = 384
HERE = Path(__file__).resolve().parent


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n")
    return head.encode() + body


def _answers(answer_bytes: int) -> dict[str, bytes]:
    """Every reply, built once: the text is `answer_bytes` of ASCII words, usage counts a token per word."""
    text = ("word " * (answer_bytes // 5 + 1))[:answer_bytes]
    usage = {"prompt_tokens": 8, "completion_tokens": len(text.split()), "total_tokens": 8 + len(text.split())}
    completion = {"id": "cmpl-bench", "object": "text_completion", "model": MODEL, "usage": usage,
                  "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
    chat = {"id": "chatcmpl-bench", "object": "chat.completion", "model": MODEL, "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    models = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
    vector = [round(0.05 * (n % 20) - 0.5, 3) for n in range(EMBEDDING_DIMENSIONS)]
    embeddings = {"object": "list", "model": MODEL, "usage": {"prompt_tokens": 8, "total_tokens": 8},
                  "data": [{"object": "embedding", "index": 0, "embedding": vector}]}
    return {"/v1/completions": _response(json.dumps(completion).encode()),
            "/v1/chat/completions": _response(json.dumps(chat).encode()),
            "/v1/models": _response(json.dumps(models).encode()),
            "/v1/embeddings": _response(json.dumps(embeddings).encode()),  # one vector: one input a request
            "/health": _response(b"{}")}  # as vLLM's: GuideLLM asks it before it starts


CHARS_PER_TOKEN = 4


@dataclass
class _Tokenizer:
    """One token per CHARS_PER_TOKEN characters; ids from a vocabulary grown as chunks are first seen."""

    ids: dict[str, int] = field(default_factory=dict)
    chunks: list[str] = field(default_factory=list)

    def encode(self, text: str) -> list[int]:
        out = []
        for start in range(0, len(text), CHARS_PER_TOKEN):
            chunk = text[start:start + CHARS_PER_TOKEN]
            if chunk not in self.ids:
                self.ids[chunk] = len(self.chunks)
                self.chunks.append(chunk)
            out.append(self.ids[chunk])
        return out

    def answer(self, path: str, body: dict[str, Any]) -> bytes | None:
        """The reply to a tokenizer route or a completion, counted by this rule; None for other paths."""
        if path == "/tokenize":
            tokens = self.encode(body.get("prompt") or "")
            return _response(json.dumps({"tokens": tokens, "count": len(tokens), "max_model_len": 1 << 20}).encode())
        if path == "/detokenize":
            return _response(json.dumps({"prompt": "".join(self.chunks[t] for t in body.get("tokens", []))}).encode())
        if path not in ("/v1/completions", "/v1/chat/completions"):
            return None
        prompt = body.get("prompt") or "".join(str(m.get("content", "")) for m in body.get("messages", []))
        words = body.get("max_tokens", 16) if body.get("ignore_eos") else min(8, body.get("max_tokens", 8))
        text = " ".join(["word"] * words)
        usage = {"prompt_tokens": len(self.encode(prompt)), "completion_tokens": words}
        choice: dict[str, Any] = ({"index": 0, "text": text, "finish_reason": "length"} if path == "/v1/completions"
                                  else {"index": 0, "message": {"role": "assistant", "content": text},
                                        "finish_reason": "length"})
        kind = "text_completion" if path == "/v1/completions" else "chat.completion"  # AIPerf refuses an answer
        return _response(json.dumps({"id": "bench", "object": kind, "created": 0, "model": MODEL,  # without them
                                     "choices": [choice], "usage": usage}).encode())


def _streamed(answers: dict[str, bytes]) -> dict[str, bytes]:
    """Each completion answer as one SSE event: its JSON with the choice's text as a delta, then [DONE]."""
    streamed = {}
    for path in ("/v1/completions", "/v1/chat/completions"):
        answer = json.loads(answers[path].split(b"\r\n\r\n", 1)[1])
        choice = answer["choices"][0]
        if "message" in choice:
            choice["delta"] = choice.pop("message")
        body = f"data: {json.dumps(answer)}\n\ndata: [DONE]\n\n".encode()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(body)}\r\n"
                "Connection: keep-alive\r\n\r\n")
        streamed[path] = head.encode() + body
    return streamed


@dataclass
class _State:
    answers: dict[str, bytes]
    delay_s: float
    per_other_s: float = 0.0  # --delay-per-other-ms, in seconds
    in_flight: int = 0  # completion requests received and not yet answered
    tokenizer: _Tokenizer | None = None
    received_ns: list[int] = field(default_factory=list)
    answered_ns: list[int] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)  # per received request
    streamed: dict[str, bytes] = field(default_factory=dict)  # the answers as SSE, for "stream": true
    keep_prompts: bool = False  # --keep-prompts: each completion request's prompt, for counting sends per test
    prompts: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.received_ns, self.answered_ns, self.client_ports, self.prompts = [], [], [], []


class _Connection(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("peername")[1]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
            self._answer(head.split(" ", 2), body)

    def _answer(self, request_line: list[str], body: bytes) -> None:
        method, target = request_line[0], request_line[1] if len(request_line) > 1 else "/"
        path, _, query = target.partition("?")
        state = self.state
        if state.tokenizer is not None and method == "POST":
            counted = state.tokenizer.answer(path, json.loads(body or b"{}"))
            if counted is not None and path in ("/tokenize", "/detokenize"):
                self.transport.write(counted)
                return
            if counted is not None:
                state.received_ns.append(time.perf_counter_ns())
                state.client_ports.append(self.port)
                self._later(counted)
                return
        if method == "GET" and path == "/stamps":
            stamps = json.dumps({"received_ns": state.received_ns, "answered_ns": state.answered_ns,
                                 "client_ports": state.client_ports, "prompts": state.prompts}).encode()
            if "reset=1" in query:
                state.reset()
            self.transport.write(_response(stamps))
            return
        reply = state.answers.get(path)
        if method == "POST" and b'"stream"' in body and json.loads(body).get("stream"):
            reply = state.streamed.get(path, reply)
        if reply is None:
            self.transport.write(_response(b'{"error": {"message": "not found"}}', "404 Not Found"))
            return
        if method == "GET":
            self.transport.write(reply)
            return
        state.received_ns.append(time.perf_counter_ns())
        state.client_ports.append(self.port)
        if state.keep_prompts:
            state.prompts.append(str(json.loads(body).get("prompt")))
        self._later(reply)

    def _later(self, reply: bytes) -> None:
        state = self.state
        delay = state.delay_s + state.per_other_s * state.in_flight
        state.in_flight += 1
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._send, reply)
        else:
            self._send(reply)

    def _send(self, reply: bytes) -> None:
        self.state.in_flight -= 1
        if not self.transport.is_closing():
            self.transport.write(reply)
            self.state.answered_ns.append(time.perf_counter_ns())


async def serve(delay_ms: float, answer_bytes: int, keep_prompts: bool = False, tokenizer: bool = False,
                per_other_ms: float = 0.0) -> None:
    answers = _answers(answer_bytes)
    state = _State(answers, delay_ms / 1000.0, per_other_ms / 1000.0, keep_prompts=keep_prompts,
                   tokenizer=_Tokenizer() if tokenizer else None, streamed=_streamed(answers))
    server = await asyncio.get_running_loop().create_server(
        lambda: _Connection(state), "127.0.0.1", 0, backlog=512)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# -- the benchmark scripts' side ------------------------------------------------------------------


@dataclass
class RunningServer:
    url: str  # http://127.0.0.1:<port>/v1
    process: subprocess.Popen

    def stamps(self, reset: bool = False) -> dict[str, list[int]]:
        """The server's request stamps (perf_counter_ns, comparable with this process's clock)."""
        base = self.url.rsplit("/v1", 1)[0]
        with urllib.request.urlopen(f"{base}/stamps{'?reset=1' if reset else ''}", timeout=30) as reply:
            return json.loads(reply.read())


@contextmanager
def launch(delay_ms: float = 0.0, answer_bytes: int = 64, keep_prompts: bool = False,
           tokenizer: bool = False, per_other_ms: float = 0.0) -> Iterator[RunningServer]:
    """Run the server in its own process (so it never competes for this one's GIL); stop it afterwards."""
    command = [sys.executable, str(HERE / "openai_server.py"), "--delay-ms", str(delay_ms),
               "--answer-bytes", str(answer_bytes), *(["--keep-prompts"] if keep_prompts else []),
               *(["--tokenizer"] if tokenizer else []),
               *(["--delay-per-other-ms", str(per_other_ms)] if per_other_ms else [])]
    print("server:", " ".join(command), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        yield RunningServer(f"http://127.0.0.1:{int(line.split()[1])}/v1", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def write_suite(path: Path, tests: int, prompt_words: int = 8, parameters: dict[str, Any] | None = None) -> Path:
    """A suite of `tests` completions tests with distinct ids and names (so each writes its own files)."""
    prompt = " ".join(["benchmark"] * prompt_words)
    cases = [{"id": f"t{n}", "name": f"Test {n}", "category": "bench", "prompt": f"{prompt} {n}",
              "parameters": parameters or {"max_tokens": 16}} for n in range(tests)]
    path.write_text(json.dumps({"test_suite_id": "bench", "tests": cases}))
    return path


def plugin_command(suite: Path, url: str, *extra: str) -> list[str]:
    """The plugin run every benchmark measures, with its default settings."""
    return [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint", url,
            "-p", "no:cacheprovider", "-q", *extra]


@dataclass
class Timing:
    """A finished command: wall seconds seen from outside, and the CPU seconds its processes used."""

    wall_s: float
    user_s: float
    sys_s: float
    output: str


def run_timed(command: list[str], cwd: Path) -> Timing:
    """Run a pytest command with output captured; a failed run stops the benchmark with its tail.

    Bytecode caches as on a user's machine: with PYTHONDONTWRITEBYTECODE set (some containers set it) pytest
    cannot cache its assertion-rewritten plugin modules, and every run compiles the whole plugin again (0.1-0.3 s
    here), a cost no installed plugin pays after its first run."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, check=False, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return Timing(wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, done.stdout)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before each completion answer")
    parser.add_argument("--answer-bytes", type=int, default=64, help="length of the answer text")
    parser.add_argument("--keep-prompts", action="store_true", help="keep each prompt for GET /stamps")
    parser.add_argument("--tokenizer", action="store_true", help="serve /tokenize and count usage by its rule")
    parser.add_argument("--delay-per-other-ms", type=float, default=0.0,
                        help="more wait per other completion request in flight at arrival")
    args = parser.parse_args(argv)
    with suppress(KeyboardInterrupt):
        asyncio.run(serve(args.delay_ms, args.answer_bytes, args.keep_prompts, args.tokenizer,
                          args.delay_per_other_ms))


if __name__ == "__main__":
    main()
