"""SSE reading over real HTTP: the fault server on 127.0.0.1 writes byte-exact scripts with real delays."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from faultserver import FaultServer, Reply

from pytest_llmbench.http.events import MAX_EVENT_BYTES, EventTooLarge, SSEParser
from pytest_llmbench.http.sse import DRAIN_LIMIT, StreamOutcome, read_stream, tpot

CHAT_PATH = "/v1/chat/completions"


def Script(steps: list[tuple[float, bytes]], *, chunked: bool = True, break_off: bool = False,
           hold_end: float = 0.0) -> Reply:
    """An event stream the fault server writes: (seconds to wait, bytes) steps, each flushed as its own write."""
    return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=steps, chunked=chunked,
                 break_off=break_off, hold_end=hold_end)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault:
        yield fault


def run(server: FaultServer, script: Reply, api_type: str = "chat", deadline_s: float = 10.0,
        timeout: tuple[float, float] = (5.0, 5.0)) -> StreamOutcome:
    server.reply(script)
    with requests.Session() as session:
        sent_ns = time.perf_counter_ns()
        response = session.post(server.url_for(CHAT_PATH), json={"stream": True}, stream=True, timeout=timeout)
        assert response.status_code == 200
        with response:
            return read_stream(response, api_type, sent_ns, time.monotonic() + deadline_s)


def event(payload: dict[str, Any] | str, end: bytes = b"\n") -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return b"data: " + data.encode("utf-8") + end + end


def chat(content: str | None = None, *, role: str | None = None, finish: str | None = None,
         reasoning: str | None = None) -> dict[str, Any]:
    delta = {k: v for k, v in (("role", role), ("content", content), ("reasoning_content", reasoning)) if v is not None}
    return {"model": "m1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"model": "m1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


DONE = event("[DONE]")


def steps(*pieces: bytes) -> list[tuple[float, bytes]]:
    return [(0.0, piece) for piece in pieces]


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "connection-close"])
def test_chat_stream_assembles_text_usage_and_finish_reason(server: FaultServer, chunked: bool) -> None:
    body = steps(event(chat(role="assistant")), event(chat("Hello")), event(chat(", world")),
                 event(chat(finish="stop")), event(usage(7, 3)), DONE)
    outcome = run(server, Script(body, chunked=chunked))
    assert outcome.error is None
    assert outcome.done
    assert outcome.text == "Hello, world"
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (7, 3)
    assert outcome.finish_reason == "stop"
    assert outcome.chunk_count == 5
    assert len(outcome.content_ns) == 2  # the role-only, finish and usage chunks carry no text


def test_completions_stream_reads_choice_text(server: FaultServer) -> None:
    def piece(text: str, finish: str | None = None) -> bytes:
        return event({"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]})

    outcome = run(server, Script(steps(piece("4"), piece("2", "length"), DONE)), api_type="completions")
    assert (outcome.text, outcome.finish_reason, outcome.error) == ("42", "length", None)


def test_line_separators_inside_content_are_kept(server: FaultServer) -> None:
    outcome = run(server, Script(steps(event(chat("a\u2028b")), event(chat("c\u2029d")), DONE)))
    assert outcome.error is None
    assert outcome.text == "a\u2028b" + "c\u2029d"


def test_multibyte_character_split_across_writes_is_whole(server: FaultServer) -> None:
    raw = event(chat("naïve 日本"))
    cut = raw.index("日".encode()) + 1
    outcome = run(server, Script([(0.0, raw[:cut]), (0.05, raw[cut:] + DONE)]))
    assert outcome.error is None
    assert outcome.text == "naïve 日本"


def test_event_split_across_writes_is_stamped_when_complete(server: FaultServer) -> None:
    first, second = event(chat("one")), event(chat("two"))
    script = [(0.0, first[:9]), (0.1, first[9:-1]), (0.0, first[-1:] + second[:3]), (0.0, second[3:] + DONE)]
    outcome = run(server, Script(script))
    assert outcome.text == "onetwo"
    assert outcome.ttft is not None and outcome.ttft >= 0.095


def test_several_events_in_one_write(server: FaultServer) -> None:
    outcome = run(server, Script(steps(event(chat("a")) + event(chat("b")) + event(usage(1, 2)) + DONE)))
    assert (outcome.text, outcome.completion_tokens, outcome.done) == ("ab", 2, True)
    assert outcome.itl == [0.0]  # one read, one stamp


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_is_understood(server: FaultServer, end: bytes) -> None:
    outcome = run(server, Script(steps(event(chat("x"), end), event(chat("y"), end), event("[DONE]", end))))
    assert (outcome.text, outcome.done, outcome.error) == ("xy", True, None)


def test_comments_and_other_fields_are_ignored(server: FaultServer) -> None:
    body = b": ping\n\nevent: message\nid: 3\nretry: 1000\n" + event(chat("ok")) + b": ping - 2025\n\n" + DONE
    outcome = run(server, Script(steps(body)))
    assert (outcome.text, outcome.chunk_count, outcome.error) == ("ok", 1, None)


def test_data_without_space_after_colon(server: FaultServer) -> None:
    body = b"data:" + json.dumps(chat("tight")).encode() + b"\n\ndata:[DONE]\n\n"
    outcome = run(server, Script(steps(body)))
    assert (outcome.text, outcome.done) == ("tight", True)


def test_multiline_data_is_joined_with_newline_even_when_crlf_is_split(server: FaultServer) -> None:
    body = b'data: {"choices": [{"index": 0,\r\ndata: "delta": {"content": "joined"}}]}\r\n\r\n' + DONE
    cut = body.index(b"\r\n") + 1  # the CR ends one write, its LF opens the next
    outcome = run(server, Script([(0.0, body[:cut]), (0.05, body[cut:])]))
    assert (outcome.text, outcome.chunk_count, outcome.error) == ("joined", 1, None)


def test_reasoning_is_kept_out_of_the_answer_but_timed(server: FaultServer) -> None:
    outcome = run(server, Script(steps(event(chat(reasoning="think ")), event(chat(reasoning="more")),
                                       event(chat("answer")), DONE)))
    assert outcome.text == "answer"
    assert len(outcome.content_ns) == 3


@pytest.mark.parametrize("value", [-1, True, "7", 2.5])
def test_usage_figures_that_are_not_counts_are_ignored(server: FaultServer, value: Any) -> None:
    bad = {"choices": [], "usage": {"prompt_tokens": value, "completion_tokens": value}}
    outcome = run(server, Script(steps(event(chat("a")), event(usage(3, 4)), event(bad), DONE)))
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (3, 4)


def test_missing_usage_leaves_token_counts_to_the_caller(server: FaultServer) -> None:
    outcome = run(server, Script(steps(event(chat("no usage here")), DONE)))
    assert outcome.error is None
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (None, None)


def test_parser_gives_the_same_events_whatever_the_read_boundaries() -> None:
    body = (b": hi\r\nevent: e\r\ndata: \xe6\x97\xa5\xe2\x80\xa8\r\ndata:two\r\n\r\n"
            b"id: 1\rdata: cr\r\rdata: lf\n\ndata\n\ndata: [DONE]\n\n")
    whole = SSEParser().feed(body)
    parser = SSEParser()
    one_by_one = [e for i in range(len(body)) for e in parser.feed(body[i:i + 1])]
    assert one_by_one == whole == ["\u65e5\u2028\ntwo", "cr", "lf", "", "[DONE]"]
    assert parser.close() is None


def test_a_large_event_in_small_reads_is_parsed_whole() -> None:
    text = "x" * 2_000_000
    body = b"data: " + json.dumps(chat(text)).encode() + b"\n\n"
    parser = SSEParser()
    started = time.monotonic()
    events = [e for i in range(0, len(body), 512) for e in parser.feed(body[i:i + 512])]
    assert time.monotonic() - started < 5  # generous: rescanning the buffer on every read took far longer
    assert len(events) == 1 and json.loads(events[0])["choices"][0]["delta"]["content"] == text


def test_an_event_past_the_size_cap_is_refused() -> None:
    parser = SSEParser()
    piece = b"data: " + b"x" * (2**20) + b"\n"  # a megabyte a data line, never a blank line to end the event
    with pytest.raises(EventTooLarge, match="16 MB"):
        for _ in range(MAX_EVENT_BYTES // len(piece) + 2):
            parser.feed(piece)


def test_parser_close_returns_an_event_cut_before_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DO") == []
    assert parser.feed(b"NE]") == []
    assert parser.close() == "[DONE]"


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "connection-close"])
def test_stream_without_done_is_an_error_keeping_text(server: FaultServer, chunked: bool) -> None:
    outcome = run(server, Script(steps(event(chat("partial")), b"data: {\"cho"), chunked=chunked))
    assert outcome.error is not None and outcome.error.kind == "stream"
    assert "without data: [DONE]" in outcome.error.message
    assert (outcome.text, outcome.done) == ("partial", False)


def test_connection_breaking_off_is_a_stream_error_keeping_text(server: FaultServer) -> None:
    outcome = run(server, Script(steps(event(chat("so far"))), break_off=True))
    assert outcome.error is not None and outcome.error.kind == "stream"
    assert "broke off" in outcome.error.message
    assert outcome.text == "so far"


@pytest.mark.parametrize("payload", [
    {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}},
    {"object": "error", "message": "CUDA out of memory", "type": "InternalServerError", "code": 500},
], ids=["error-object", "object-error"])
def test_error_event_after_200_carries_the_server_message(server: FaultServer, payload: dict[str, Any]) -> None:
    outcome = run(server, Script(steps(event(chat("half")), event(payload), DONE)))
    error = outcome.error
    assert error is not None and error.kind == "stream"
    assert "CUDA out of memory" in error.message
    assert (error.type, error.details["code"]) == ("InternalServerError", 500)
    assert (outcome.text, outcome.done) == ("half", False)


def test_data_that_is_not_json_is_a_stream_error(server: FaultServer) -> None:
    outcome = run(server, Script(steps(event(chat("fine")), b"data: <html>oops</html>\n\n", DONE)))
    assert outcome.error is not None and outcome.error.kind == "stream"
    assert "not JSON" in outcome.error.message and "<html>" in outcome.error.message
    assert outcome.text == "fine"


def test_deadline_stops_reading_and_keeps_text(server: FaultServer) -> None:
    outcome = run(server, Script([(0.05, event(chat("t"))) for _ in range(40)] + [(0.0, DONE)]), deadline_s=0.2)
    assert outcome.error is not None and outcome.error.kind == "deadline"
    assert 1 <= len(outcome.text) < 40


def test_an_oversized_event_is_a_stream_error_keeping_text(server: FaultServer) -> None:
    huge = b"data: " + b"y" * (MAX_EVENT_BYTES + 1)
    outcome = run(server, Script(steps(event(chat("kept")), huge)))
    assert outcome.error is not None and outcome.error.kind == "stream"
    assert "16 MB" in outcome.error.message and outcome.text == "kept"


def test_silent_server_is_a_read_timeout_keeping_text(server: FaultServer) -> None:
    # 0.5 s of silence is a read timeout; 3 s of it leaves room for a busy machine to send "before" first.
    outcome = run(server, Script([(0.0, event(chat("before"))), (3.0, DONE)]), timeout=(5.0, 0.5))
    assert outcome.error is not None and outcome.error.kind == "read_timeout"
    assert outcome.text == "before"


# --- timing ----------------------------------------------------------------------------------


def test_ttft_and_itl_follow_the_server_delays(server: FaultServer) -> None:
    script = [(0.0, event(chat(role="assistant"))), (0.1, event(chat("t0")))]
    script += [(0.03, event(chat(f" t{i}"))) for i in range(1, 5)]
    script += [(0.0, event(chat(finish="stop")) + event(usage(11, 5)) + DONE)]
    outcome = run(server, Script(script))
    assert outcome.error is None and outcome.completion_tokens == 5
    # Judged against the server's own write stamps, not the nominal delays: a busy machine wakes both sides late.
    written = server.chunk_ns[1:6]  # the five content chunks
    assert outcome.ttft is not None and outcome.ttft >= 0.1  # the server waited 0.1 s before the first
    assert outcome.ttft == pytest.approx((written[0] - outcome.sent_ns) / 1e9, abs=0.02)
    actual_gaps = [(later - earlier) / 1e9 for earlier, later in itertools.pairwise(written)]
    assert outcome.itl == pytest.approx(actual_gaps, abs=0.02)
    assert all(gap >= 0.025 for gap in actual_gaps)  # the script's 30 ms, less the server's own rounding
    assert outcome.e2e_latency is not None and outcome.e2e_latency >= outcome.ttft + sum(outcome.itl)


def test_tpot_spreads_decode_time_over_tokens_after_the_first() -> None:
    assert tpot(0.2, 1.0, 5) == pytest.approx(0.2)
    assert tpot(0.2, 1.0, 1) is None
    assert tpot(0.2, 1.0, None) is None
    assert tpot(None, 1.0, 5) is None


def test_a_server_holding_the_body_open_after_done_is_not_waited_for(server: FaultServer) -> None:
    started = time.monotonic()
    outcome = run(server, Script(steps(event(chat("a")), event(usage(1, 1)), DONE), hold_end=3.0))
    waited = time.monotonic() - started
    assert outcome.done and outcome.error is None
    assert waited < DRAIN_LIMIT + 1.5  # the terminator came 3 s later
    assert outcome.e2e_latency is not None and outcome.e2e_latency < 0.4  # ends at [DONE], not at the drain


def test_connection_is_reused_after_done(server: FaultServer) -> None:
    server.reply(*(Script(steps(event(chat("a")), DONE)) for _ in range(3)))
    before = server.connections()
    with requests.Session() as session:
        for _ in range(3):
            with session.post(server.url_for(CHAT_PATH), json={}, stream=True, timeout=5) as response:
                outcome = read_stream(response, "chat", time.perf_counter_ns(), time.monotonic() + 5)
            assert outcome.done
    assert server.connections() - before == 1
