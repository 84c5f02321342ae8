"""Issue 23's phase B: a load run's requests hold no thread while the reading loop reads their answers; a stop
with such streams in flight ends them and keeps what they read. Judged against the schedule server's own stamps
(benchmarks/sse_server.py, in a process of its own)."""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any

import pytest
from test_timing import in_flight_together, schedule_server

from pytest_llmbench.http.client import ClientConfig, LLMClient
from pytest_llmbench.session.load.dispatcher import CANCELLED, Dispatcher, Ticket, open_files_for
from pytest_llmbench.session.load.plan import Level

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="perf_counter is one clock across processes on Linux")
__all__ = ["schedule_server"]  # the fixture, shared with test_timing


def tickets_for(side: str, count: int, level: Level) -> list[Ticket]:
    return [Ticket(key=f"{side} {n}", api_type="chat", phase=0, level=level, body={
        "model": "schedule", "stream": True, "messages": [{"role": "user", "content": f"{side} {n}"}]})
        for n in range(count)]


def load_threads() -> int:
    return sum(thread.name.startswith("llmbench-load") for thread in threading.enumerate())


def test_requests_in_flight_hold_no_thread_while_their_answers_stream(schedule_server: Any) -> None:
    """Issue 23's phase B: a load run's pool thread carries a request until its stream is handed to the reading
    loop, and again once it has ended, so 256 streams in flight together (the server's own count) need a few
    threads, not 256 as when every request's thread waits for its stream. Requests leave at 200 a second and
    each answer takes 2.5 s: a thread is needed only while a request is sent and its headers awaited."""
    streams, tokens = 256, 16
    url, stamps = schedule_server(ttft_ms=1000, gap_ms=100, tokens=tokens)
    open_files_for(streams + 64)

    def run(steps: bool, side: str) -> tuple[list[Any], int]:
        client = LLMClient(ClientConfig(endpoint=url, timeout=60, connections=streams), model="schedule")
        dispatcher = Dispatcher(client.send_steps if steps else client.send, threads=streams, seed=1)
        tickets = tickets_for(side, streams, Level(concurrency=streams, rate=200.0))
        dispatcher.add(tickets)
        try:
            answers = [dispatcher.take(ticket.key).answer for ticket in tickets]
            return answers, load_threads()  # the pool never lets a thread go before it is shut down
        finally:
            dispatcher.stop()
            client.close()

    (waiting, waiting_threads), (handed, handed_threads) = run(False, "waiting"), run(True, "handed")
    print(f"pool threads for {streams} streams: {waiting_threads} waiting, {handed_threads} handed over")
    written = stamps()
    for side, results in (("waiting", waiting), ("handed", handed)):
        names = [f"{side} {n}" for n in range(streams)]
        assert in_flight_together(written, names) >= streams * 0.9, side  # by the server's own count
        for name, result in zip(names, results, strict=True):
            assert result.success and len(result.itl) == tokens - 1, (name, result.error_message)
            assert all(gap >= 0 for gap in result.itl), (name, result.itl)
    assert waiting_threads >= streams * 0.9, waiting_threads  # a thread per request in flight
    assert handed_threads <= streams // 4, handed_threads  # a few on a quiet machine; margin for a busy one


def test_a_stop_with_streams_in_flight_ends_them_and_keeps_what_they_read(schedule_server: Any) -> None:
    """The watchdog's stop shuts the sockets the loop reads; each request goes on on the pool once its stream has
    ended, so the stop returns with every answer as far as it got and no thread left."""
    streams = 32
    url, stamps = schedule_server(ttft_ms=50, gap_ms=200, tokens=100)  # 20 s each: stopped long before the end
    client = LLMClient(ClientConfig(endpoint=url, timeout=60, connections=streams), model="schedule")
    dispatcher = Dispatcher(client.send_steps, threads=streams, seed=1)
    tickets = tickets_for("stopped", streams, Level(concurrency=streams, rate=math.inf))
    dispatcher.add(tickets)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the server has written two tokens to every stream
        written = stamps()
        if len(written) == streams and all(len(w["written_ns"]) >= 2 for w in written.values()):
            break
        time.sleep(0.1)
    try:
        assert dispatcher.streaming == streams  # every request's answer is with the loop, none holds a thread
        assert dispatcher.stop() == []
    finally:
        client.close()
    assert dispatcher.streaming == 0 and dispatcher.cancelled == streams and load_threads() == 0
    for ticket in tickets:
        result = ticket.answer
        assert ticket.state == CANCELLED and result is not None, ticket.key
        assert not result.success and result.error.kind == "deadline", (ticket.key, result.error_message)
        assert result.response_text.startswith(" tok0 tok1"), (ticket.key, result.response_text)
