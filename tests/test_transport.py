"""One attempt over real HTTP: the total deadline, redirects, connection reuse, TLS, proxies and what is read."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from faultserver import (
    COMPLETION,
    FaultServer,
    Reply,
    client_for,
    self_signed_cert,
    server_context,
)

from pytest_llmbench.http import arrival
from pytest_llmbench.http.api_errors import ERROR_BODY_LIMIT
from pytest_llmbench.http.watchdog import _HTTPConnection

# --- The total deadline ---------------------------------------------------------------------------

def test_total_deadline_holds_against_a_trickling_server(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION, trickle=0.1))  # ~200 bytes: 20 s if the client waited

    started = time.monotonic()
    result = client_for(v1, timeout=0.6).complete("x")

    assert time.monotonic() - started < 4
    assert result.error is not None
    assert result.error.kind == "deadline"
    assert result.error_message is not None
    assert "0.6 s deadline (setting timeout)" in result.error_message
    assert result.attempts == 1


def test_total_deadline_holds_against_headers_sent_a_byte_at_a_time(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION, header_trickle=0.2))  # ~100 header bytes: 20 s if waited for

    started = time.monotonic()
    result = client_for(v1, timeout=1.0).complete("x")

    assert time.monotonic() - started < 4
    assert result.error is not None
    assert (result.error.kind, result.attempt_log[0].status) == ("deadline", None)
    assert result.error_message is not None
    assert "no response came within the 1 s deadline (setting timeout)" in result.error_message
    assert result.attempts == 1


def test_a_silent_server_meets_the_same_deadline(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION, delay=3.0))

    started = time.monotonic()
    result = client_for(v1, timeout=0.5).complete("x")

    assert time.monotonic() - started < 2.5
    assert result.error is not None
    assert result.error.kind == "deadline" and result.attempts == 1


def test_a_stream_that_goes_silent_is_cut_at_the_total_deadline(fault_server: FaultServer, v1: str) -> None:
    chunk = f"data: {json.dumps({'choices': [{'index': 0, 'text': 'w', 'finish_reason': None}]})}\n\n"
    fault_server.always(Reply(200, chunks=[(0.5, chunk)] * 3 + [(10.0, "data: [DONE]\n\n")]))

    started = time.monotonic()
    result = client_for(v1, timeout=2.0).complete("x", stream=True)

    # silent from 1.5 s on: a per-read timeout alone would wait until 3.5 s
    assert time.monotonic() - started < 3.0
    assert result.error is not None
    assert not result.success and result.error.kind == "deadline"
    assert "the stream was not complete within the 2 s deadline (setting timeout) after 3 chunks" in (
        result.error_message or "")
    assert result.response_text == "www"
    assert result.attempts == 1


def test_the_wait_for_the_end_of_the_body_after_done_is_not_the_answers_time(fault_server: FaultServer, v1: str) -> None:
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "text": w, "finish_reason": f}]}
                                    for w, f in (("Pa", None), ("ris", "stop"))]
    chunks.append({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}})
    reply = Reply.sse(chunks)
    reply.hold_end = 3.0  # the chunked terminator comes 3 s after [DONE]
    fault_server.reply(reply)

    started = time.monotonic()
    result = client_for(v1).complete("x", stream=True)

    assert time.monotonic() - started < 2  # gave up on the terminator after about half a second
    assert result.success and result.response_text == "Paris"
    assert result.execution_time < 0.4 and result.execution_time == result.e2e_latency
    assert result.tokens_per_second is None  # 2 tokens: too few for a rate (MIN_RATE_TOKENS)


# --- What is read ---------------------------------------------------------------------------------

def test_redirects_are_not_followed(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.redirect("http://127.0.0.1:9/v1/completions", status=308))

    result = client_for(v1).complete("x")

    assert result.error is not None
    assert result.error.kind == "redirect"
    assert result.error_message is not None
    assert "http://127.0.0.1:9/v1/completions" in result.error_message
    assert result.attempts == 1 and len(fault_server.received) == 1


def test_an_error_body_is_read_only_up_to_its_limit(fault_server: FaultServer, v1: str) -> None:
    page = b"x" * (ERROR_BODY_LIMIT + 10_000)
    fault_server.always(Reply(500, chunks=[page, (30.0, b"the rest, much later")],
                              headers={"Content-Type": "text/plain"}))

    started = time.monotonic()
    result = client_for(v1, retries=0, timeout=10.0).complete("x")

    assert time.monotonic() - started < 5  # did not wait for the rest of the body
    assert result.error is not None
    assert (result.error.kind, result.error.status) == ("http", 500)
    assert result.error_message is not None
    assert len(result.error_message) < 1100


def test_a_streamed_request_answered_with_an_html_page_is_a_bad_response(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(200, "<html><body>Sign in to continue</body></html>", {"Content-Type": "text/html"}))

    result = client_for(v1).complete("x", stream=True)

    assert result.error is not None
    assert (result.error.kind, result.stream) == ("bad_response", False)
    assert result.error_message is not None
    assert result.error.body_excerpt is not None
    assert "not JSON" in result.error_message and "Sign in to continue" in result.error.body_excerpt


def test_a_server_that_ignores_stream_true_still_gives_its_answer(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION))

    result = client_for(v1).complete("x", stream=True)

    assert result.success and result.response_text == "Paris"
    assert not result.stream and result.ttft is None


# --- Connections ----------------------------------------------------------------------------------

class _Writes:
    """The connection's real socket, with each write it is asked for noted."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.writes = sock, list[bytes]()

    def sendall(self, data: Any) -> Any:
        self.writes.append(bytes(data))
        return self.sock.sendall(data)

    def __getattr__(self, name: Any) -> Any:
        return getattr(self.sock, name)


@pytest.mark.parametrize("body", [b'{"prompt": "a"}', None])
def test_a_request_leaves_in_one_write_head_and_body_together(fault_server: FaultServer, v1: str, body: Any) -> None:
    """Between two writes the thread gives up the GIL; with many requests in flight the body could wait
    milliseconds behind its head, and the server would count them as before the request."""
    fault_server.always(Reply.json(COMPLETION))
    host, port = urlsplit(v1).hostname, urlsplit(v1).port
    assert host is not None
    connection = _HTTPConnection(host, port)
    connection.connect()
    connection.sock = writes = _Writes(connection.sock)

    connection.request("POST" if body else "GET", "/v1/completions", body=body,
                       headers={"Content-Type": "application/json"})

    assert len(writes.writes) == 1 and writes.writes[0].endswith(body or b"\r\n\r\n")
    assert writes.writes[0].startswith(b"POST " if body else b"GET ")
    assert connection.getresponse().status == 200
    connection.close()


_LATE_TOKEN_SERVER = r"""
import socket, time
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
reader = conn.makefile("rb")
length = 0
while (line := reader.readline()) not in (b"\r\n", b""):
    if line.lower().startswith(b"content-length:"):
        length = int(line.split(b":")[1])
reader.read(length)
def event(data):
    return b"%x\r\n%s\r\n" % (len(data) + 8, b"data: " + data + b"\n\n")
conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
time.sleep(0.2)  # the first token, 200 ms after the whole request came
conn.sendall(event(b'{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}') + event(b"[DONE]")
             + b"0\r\n\r\n")
time.sleep(5)
"""


@pytest.fixture
def late_token_url() -> Iterator[str]:
    """A server in a process of its own (holding the GIL here cannot stop it): one streamed answer whose first
    token comes 200 ms after the request."""
    server = subprocess.Popen([sys.executable, "-c", _LATE_TOKEN_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        yield f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(arrival.SO_TIMESTAMPNS is None, reason="the kernel gives no receive times here (not Linux)")
def test_a_streamed_token_is_timed_when_it_arrived_not_when_the_reading_thread_got_the_gil(late_token_url: Any) -> None:
    """The reading thread cannot run while another holds the GIL; the kernel's receive time still says when the
    token came."""
    started = time.perf_counter()
    sum(range(1_000_000))
    per_million = time.perf_counter() - started
    outcome: list[Any] = []
    reader = threading.Thread(target=lambda: outcome.append(
        client_for(late_token_url).chat([{"role": "user", "content": "x"}], stream=True)))
    reader.start()
    time.sleep(0.1)  # the request is out; the token comes in 100 ms
    held = time.perf_counter()
    sum(range(int(0.6 / per_million * 1_000_000)))  # one C call: the GIL stays held for about 0.6 s
    held = time.perf_counter() - held
    reader.join(10)
    [result] = outcome
    assert result.success and result.response_text == "Hi"
    assert held > 0.25  # the reading thread could not have read the token in time on its own
    assert 0.18 < result.ttft < 0.3, result.ttft  # without the kernel's time: 0.1 s + however long the GIL was held


def test_ttft_starts_when_the_request_goes_out_not_while_the_client_prepares_it(late_token_url: Any) -> None:
    """Encoding a large body is the client's time: the server's 200 ms are what TTFT and latency measure."""
    messages = [{"role": "user", "content": "x"}] * 1_000_000  # about 35 MB of JSON
    started = time.perf_counter()
    json.dumps({"messages": messages}).encode()
    encoding = time.perf_counter() - started

    result = client_for(late_token_url, timeout=30).chat(messages, stream=True)

    assert result.success and encoding > 0.1
    assert result.ttft is not None
    assert 0.18 < result.ttft < 0.2 + 0.5 * encoding, (result.ttft, encoding)  # sending 35 MB is part of it


def test_the_connection_is_kept_for_the_next_request(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION))
    client = client_for(v1)

    client.complete("a")
    client.complete("b")

    assert fault_server.received[0].client_port == fault_server.received[1].client_port


def test_a_cookie_the_server_sets_goes_with_the_next_request_beside_the_configured_headers(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION, headers={"Set-Cookie": "sticky=node-3; Path=/"}))
    client = client_for(v1, headers={"X-Team": "bench"})

    client.complete("a")
    client.complete("b")

    first, second = fault_server.received
    assert "cookie" not in first.headers and second.headers["cookie"] == "sticky=node-3"
    assert first.headers["x-team"] == second.headers["x-team"] == "bench"
    assert second.headers["user-agent"].startswith("pytest-llmbench")


def test_proxy_settings_from_the_environment_are_honoured(fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", fault_server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fault_server.reply(Reply.json(COMPLETION), Reply.json(COMPLETION))
    client = client_for("http://127.0.0.2:9/v1")  # nothing listens there: only the proxy can answer

    assert client.complete("x").success and client.complete("y").success
    assert [r.path for r in fault_server.received] == ["http://127.0.0.2:9/v1/completions"] * 2


# --- TLS ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with FaultServer(ssl_context=server_context(cert, key)) as server:
        server.always(Reply.json(COMPLETION))
        yield server, cert


def test_a_ca_bundle_verifies_a_self_signed_server(tls_server: Any) -> None:
    server, cert = tls_server

    result = client_for(server.url_for("/v1"), verify=str(cert)).complete("x")

    assert result.success and result.response_text == "Paris"


def test_an_unknown_certificate_is_rejected_without_retries(tls_server: Any) -> None:
    server, _ = tls_server

    result = client_for(server.url_for("/v1")).complete("x")

    assert result.error is not None
    assert (result.error.kind, result.error.type) == ("connection", "tls")
    assert result.error_message is not None
    assert "TLS" in result.error_message and "certificate" in result.error_message.lower()
    assert result.attempts == 1


def test_insecure_mode_skips_verification_without_warning_each_request(tls_server: Any) -> None:
    server, _ = tls_server

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as under -W error: a warning would fail the request
        client = client_for(server.url_for("/v1"), verify=False)
        results = [client.complete("x"), client.complete("y")]

    assert all(result.success for result in results)
