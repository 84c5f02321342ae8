"""The process's reading loop (http/reader.py) and the body framing it takes off (http/framing.py), over real
sockets: a raw server on 127.0.0.1 writes byte-exact responses, framing included, the way a hostile one would."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from timing_servers import client, serving

from pytest_llmbench.http import arrival, reader
from pytest_llmbench.http.client import ClientConfig, LLMClient
from pytest_llmbench.http.framing import LINE_LIMIT
from pytest_llmbench.http.sse import DRAIN_LIMIT
from pytest_llmbench.session.load.dispatcher import Dispatcher, Ticket
from pytest_llmbench.session.load.plan import Level

Step = tuple[float, bytes]  # seconds to wait, then bytes to write
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


def event(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


ANSWER = event("Hel") + event("lo") + event(finish="stop") + b"data: [DONE]\n\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class RawServer:
    """Answers each request with the next script of raw writes; keeps the connection open after it unless told.
    Records per connection how many requests it carried."""

    def __init__(self) -> None:
        self.scripts: list[tuple[list[Step], bool]] = []
        self.connections: list[dict[str, Any]] = []
        self.writes: list[list[tuple[int, int]]] = []  # per request: perf_counter_ns just before and after each write
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def script(self, *steps: Step, close: bool = False) -> None:
        self.scripts.append((list(steps), close))

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                conn, _ = self._listener.accept()
                record = {"requests": 0}
                self.connections.append(record)
                threading.Thread(target=self._serve, args=(conn, record), daemon=True).start()

    def _serve(self, conn: socket.socket, record: dict[str, Any]) -> None:
        with conn, contextlib.suppress(OSError):
            pending = b""
            while self.scripts or pending:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length")), b"0"))
                while len(pending) < length:
                    pending += conn.recv(65536)
                pending = pending[length:]
                record["requests"] += 1
                steps, close = self.scripts.pop(0)
                writes: list[tuple[int, int]] = []
                self.writes.append(writes)
                for delay, data in steps:
                    if self._stop.wait(delay):
                        return
                    before = time.perf_counter_ns()
                    conn.sendall(data)
                    writes.append((before, time.perf_counter_ns()))
                if close:
                    return


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each stream went to the reading loop (True) or was read on its request's thread (False)."""
    taken: list[bool] = []
    hand_over = reader.ReadingLoop.hand_over

    def watched(self: reader.ReadingLoop, *args: Any) -> Any:
        stream = hand_over(self, *args)
        taken.append(stream is not None)
        return stream

    monkeypatch.setattr(reader.ReadingLoop, "hand_over", watched)
    return taken


def ask(server: RawServer, timeout: float = 10.0, **config: Any) -> Any:
    client = LLMClient(ClientConfig(endpoint=server.url, timeout=timeout, retries=0, **config), model="m")
    try:
        return client.chat([{"role": "user", "content": "x"}], stream=True)
    finally:
        client.close()


def ask_twice(server: RawServer) -> list[Any]:
    client = LLMClient(ClientConfig(endpoint=server.url, timeout=10, retries=0), model="m")
    try:
        return [client.chat([{"role": "user", "content": "x"}], stream=True) for _ in range(2)]
    finally:
        client.close()


pytestmark = pytest.mark.skipif(not arrival.SO_TIMESTAMPNS, reason="the loop reads stamped sockets only")


@pytest.mark.parametrize("framing", ["chunked", "length"])
@pytest.mark.parametrize("with_headers", [True, False], ids=["first-event-with-headers", "headers-alone"])
def test_the_loop_reads_a_stream_and_hands_its_connection_to_the_next_request(raw_server: Any, handed_over: Any,
                                                                              framing: Any,
                                                                              with_headers: Any) -> None:
    """The events a server writes with its headers (read by http.client with them) come first; a whole body
    leaves its connection in the pool."""
    events = [event("Hel"), event("lo"), event(finish="stop") + b"data: [DONE]\n\n"]
    if framing == "chunked":
        head, body = CHUNKED, [chunk(e) for e in events] + [b"0\r\n\r\n"]
    else:
        head, body = HEAD + b"Content-Length: %d\r\n\r\n" % len(b"".join(events)), events
    steps = [(0.0, head + body[0])] if with_headers else [(0.0, head), (0.05, body[0])]
    for _ in range(2):
        raw_server.script(*steps, *[(0.05, piece) for piece in body[1:]])

    results = ask_twice(raw_server)

    assert [(r.success, r.response_text) for r in results] == [(True, "Hello")] * 2, results[0].error_message
    assert handed_over == [True, True]
    assert [c["requests"] for c in raw_server.connections] == [2]  # the second request reused the connection
    first = 0 if with_headers else 1  # the write that carried "Hel"; the next one carried "lo"
    slack = 2_000_000  # the marking's tolerance and the clocks' reading, in ns
    for result, writes in zip(results, raw_server.writes, strict=True):  # the tokens' own gap, by the server's clock
        (hel_before, hel_after), (lo_before, lo_after) = writes[first], writes[first + 1]
        assert lo_before - hel_after - slack <= result.itl[0] * 1e9 <= lo_after - hel_before + slack, result.itl


@pytest.mark.parametrize("loop", [True, False], ids=["loop", "thread"])
@pytest.mark.parametrize("shape", ["llama.cpp", "vllm"])
def test_the_loop_carries_server_timing_traceparent_and_the_reasoning_split(handed_over: Any, monkeypatch: Any,
                                                                            shape: str, loop: bool) -> None:
    """What the request's thread would give, the loop gives: the server's own split (llama.cpp in the last
    chunk, vLLM in the usage chunk), the traceparent the request carried, and the first answer token apart from
    the first thinking one, each checked against the server's clock."""
    monkeypatch.setattr(reader, "ENABLED", loop)
    for server in serving(shape, reasoning_s=0.2, prefill_s=0.0, reasoning_usage=3):
        with client(server.url, server_timing=True) as llm:
            result = llm.chat([{"role": "user", "content": "think"}], stream=True)
    [truth], [received] = server.truth, server.received
    assert result.success, result.error_message
    assert handed_over == [loop]
    assert result.response_text == "w0 w1 w2 w3 w4" and result.reasoning_text.startswith("thinking ")
    assert result.reasoning_tokens == 3  # usage.completion_tokens_details, read from the usage chunk
    assert result.ttfot is not None and result.ttft is not None
    assert result.ttfot - result.ttft == pytest.approx(truth["answer_after_first"], abs=0.05)
    assert result.server_timing == {"source": shape, "dropped": {}}
    assert result.decode_time == pytest.approx(truth["decode_time"], abs=1e-6)
    assert received["headers"]["traceparent"] == f"00-{result.trace_id}-{result.span_id}-01"


@pytest.mark.parametrize(("body", "says"), [
    (b"zz\r\n", "invalid chunk size line"),
    (b"-5\r\n", "invalid chunk size line"),
    (b"0" * (LINE_LIMIT + 10), f"grew past {LINE_LIMIT} bytes"),
    (b"3\r\nabcdef\r\n", "longer than its size"),
], ids=["not-hex", "negative", "endless-size-line", "chunk-past-its-size"])
def test_hostile_chunk_framing_breaks_the_stream_keeping_its_text(raw_server: Any, handed_over: Any, body: Any,
                                                                  says: Any) -> None:
    raw_server.script((0.0, CHUNKED + chunk(event("so far"))), (0.05, body), (5.0, b""))

    result = ask(raw_server)

    assert not result.success and result.error.kind == "stream" and says in result.error_message
    assert "broke off" in result.error_message and result.response_text == "so far"
    assert handed_over == [True]


def test_an_endless_trailer_is_cut_at_the_line_limit(raw_server: Any, handed_over: Any) -> None:
    """The answer is whole ([DONE] came) but its body never ends: the drain stops at the limit, and the
    connection is not used again."""
    trailer = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n"), *[(0.0, trailer)] * (2 * LINE_LIMIT // 1000))
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\n"))

    results = ask_twice(raw_server)

    assert [(r.success, r.response_text) for r in results] == [(True, "Hello")] * 2
    assert [c["requests"] for c in raw_server.connections] == [1, 1]


def test_a_body_cut_short_of_its_length_is_a_broken_stream(raw_server: Any, handed_over: Any) -> None:
    events = event("so far") + event("never")
    raw_server.script((0.0, HEAD + b"Content-Length: %d\r\n\r\n" % len(events) + events[:-10]), close=True)

    result = ask(raw_server)

    assert not result.success and "10 bytes short of its Content-Length" in result.error_message
    assert result.response_text == "so far" and handed_over == [True]


def test_bytes_after_the_body_keep_the_answer_but_not_the_connection(raw_server: Any, handed_over: Any) -> None:
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\nHTTP/1.1 200 OK\r\n"))
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\n"))

    results = ask_twice(raw_server)

    assert [(r.success, r.response_text) for r in results] == [(True, "Hello")] * 2
    assert [c["requests"] for c in raw_server.connections] == [1, 1]


def test_a_body_held_open_after_done_is_awaited_for_the_drain_limit_only(raw_server: Any, handed_over: Any) -> None:
    raw_server.script((0.0, CHUNKED + chunk(ANSWER)), (30.0, b"0\r\n\r\n"))
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\n"))

    client = LLMClient(ClientConfig(endpoint=raw_server.url, timeout=60, retries=0), model="m")
    started = time.monotonic()
    results = [client.chat([{"role": "user", "content": "x"}], stream=True) for _ in range(2)]
    client.close()

    assert [(r.success, r.response_text) for r in results] == [(True, "Hello")] * 2
    assert (results[0].e2e_latency or DRAIN_LIMIT) < DRAIN_LIMIT  # [DONE] ends the answer's time, not the drain
    assert [c["requests"] for c in raw_server.connections] == [1, 1]
    assert time.monotonic() - started < 20  # far below the 30 s the server held the body (the drain is 0.5 s)


def test_a_stream_past_its_deadline_is_ended_by_the_watchdog_keeping_its_text(raw_server: Any,
                                                                              handed_over: Any) -> None:
    raw_server.script((0.0, CHUNKED + chunk(event("so far"))), *[(0.1, chunk(event("x")))] * 300)

    result = ask(raw_server, timeout=1.0)

    assert not result.success and result.error.kind == "deadline", result.error_message
    assert result.response_text.startswith("so far") and handed_over == [True]


def test_a_stream_past_the_size_cap_stops_there(raw_server: Any, handed_over: Any) -> None:
    raw_server.script((0.0, CHUNKED), *[(0.0, chunk(event("y" * 1000)))] * 200)

    result = ask(raw_server, max_response_bytes=50_000)

    assert not result.success and result.error.kind == "too_large"
    assert 40 <= len(result.response_text) // 1000 <= 50 and handed_over == [True]


def test_a_compressed_stream_is_read_on_its_thread(raw_server: Any, handed_over: Any) -> None:
    """Only identity bodies go to the loop: urllib3 inflates the others, as far as each read asks."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    packed = packer.compress(ANSWER) + packer.flush()
    raw_server.script((0.0, HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + chunk(packed) + b"0\r\n\r\n"))

    result = ask(raw_server)

    assert result.success and result.response_text == "Hello" and handed_over == [False]


def test_a_forked_child_reads_on_a_loop_of_its_own(raw_server: Any) -> None:
    """The parent's reading thread does not exist in a child: the child starts its own."""
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\n"))
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\n"))
    assert ask(raw_server).success  # the parent's loop is running
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if its stream was read
        os._exit(0 if ask(raw_server).response_text == "Hello" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_loop_that_fails_ends_every_stream_it_read_and_the_next_stream_gets_a_new_one(
        raw_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A load run's request goes on only when the loop ends its stream: a loop that died with it unended would
    leave the request waiting for ever. Its streams end with the failure; the next request is read by a new loop."""
    def boom(stream: Any) -> bool:
        raise RuntimeError("boom")

    raw_server.script((0.0, CHUNKED), (0.2, chunk(event("never read"))), (5.0, b""))
    raw_server.script((0.0, CHUNKED + chunk(ANSWER) + b"0\r\n\r\n"))
    monkeypatch.setattr(reader.ReadingLoop, "_step", staticmethod(boom))
    client = LLMClient(ClientConfig(endpoint=raw_server.url, timeout=60, retries=0), model="m")
    dispatcher = Dispatcher(client.send_steps, threads=1)
    [ticket] = tickets = [Ticket(key="one", api_type="chat", phase=0, level=Level(concurrency=1, rate=math.inf),
                                 body={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]})]
    try:
        dispatcher.add(tickets)
        assert ticket.event.wait(30), "the request still waits for its stream"  # 60 s before the deadline
        failed = ticket.answer
        monkeypatch.undo()
        again = client.chat([{"role": "user", "content": "x"}], stream=True)
    finally:
        dispatcher.stop()
        client.close()
    assert not failed.success and "the reading loop failed: RuntimeError('boom')" in failed.error_message
    assert again.success and again.response_text == "Hello"
