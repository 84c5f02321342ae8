"""Hostile servers, round two: answers too large to hold, connects that never complete, keys echoed back in
every encoding and cut at every limit. Real sockets (tests/faultserver.py) and real pytest sessions."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from faultserver import COMPLETION, FaultServer, Reply, client_for, unanswered_url
from openai_stub import write_suite
from run_files import batch_of, results_by_id

from pytest_llmbench.http.api_errors import EXCERPT_LIMIT, MESSAGE_LIMIT

OUTPUT = "llmbench_results/latest"
MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}
MiB = 2**20


def run_session(pytester: pytest.Pytester, server: FaultServer, tests: list[dict[str, Any]], *args: str,
                env: dict[str, str] | None = None) -> pytest.RunResult:
    """A real pytest subprocess against the fault server; one reply per test is queued by the caller."""
    server.always(Reply.json(MODELS), path="/v1/models")
    suite = write_suite(pytester.path / "hostile.json", tests)
    for name, value in (env or {}).items():
        pytester._monkeypatch.setenv(name, value)
    return pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint",
                                         server.url_for("/v1"), "--llmbench-model", "m", "--llmbench-retries", "0",
                                         "-p", "no:cacheprovider", *args, timeout=120)






def answer_body() -> tuple[bytes, bytes]:
    """The head and tail of a completion around its text: with letters between them, valid JSON once inflated."""
    head = json.dumps({**COMPLETION, "choices": [{"index": 0, "text": "@", "finish_reason": "stop"}]}).encode()
    before, after = head.split(b"@")
    return before, after


# -- 1. bounded answers -------------------------------------------------------------------------------------


def test_gzip_bomb_fails_its_test_at_the_cap_and_every_other_result_is_kept(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    head, tail = answer_body()
    fault_server.reply(Reply.gzip_bomb(64 * MiB, head, tail), Reply.json(COMPLETION), path="/v1/completions")

    run = run_session(pytester, fault_server, [{"id": "bomb"}, {"id": "fine"}],
                      "--llmbench-max-response-bytes", str(MiB))

    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(["*bomb*response exceeded 1 MiB*"])
    saved = results_by_id(pytester.path / OUTPUT)
    assert saved["bomb"]["error"]["kind"] == "too_large" and saved["fine"]["success"] is True
    assert len(batch_of(pytester.path / OUTPUT)["tests"]) == 2
    assert all(p.stat().st_size < 64 * 1024 for p in (pytester.path / OUTPUT).rglob("*_*.*") if p.suffix != ".html")


def test_a_gzip_bomb_inflates_only_as_far_as_the_cap(fault_server: FaultServer, v1: str) -> None:
    head, tail = answer_body()  # 256 MiB inflated: the cap's 1 MiB must be all that is ever held
    fault_server.reply(Reply.gzip_bomb(256 * MiB, head, tail))
    client = client_for(v1, max_response_bytes=MiB, retries=0)

    started = time.monotonic()
    result = client.complete("hi")

    assert result.error is not None
    assert result.success is False and result.error.kind == "too_large"
    assert result.error_message == "HTTP 200 (OK): response exceeded 1 MiB (setting max_response_bytes)"
    assert time.monotonic() - started < 5  # inflating 256 MiB whole takes longer on this machine
    client.close()


def test_an_endless_stream_stops_at_the_cap_keeps_its_text_and_writes_bounded_files(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.reply(Reply.endless_sse("word "), Reply.sse([{"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}]),
                       path="/v1/completions")

    run = run_session(pytester, fault_server, [{"id": "endless"}, {"id": "fine"}], "--llmbench-stream",
                      "--llmbench-max-response-bytes", str(MiB), "--llmbench-timeout", "60")

    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(["response exceeded 1 MiB (--llmbench-max-response-bytes) after * chunks"])
    saved = results_by_id(pytester.path / OUTPUT)
    text = saved["endless"]["response_text"]
    assert text.startswith("word word ") and len(text) < MiB  # the answer up to the cap is kept
    assert saved["endless"]["error"]["kind"] == "too_large" and saved["fine"]["response_text"] == "ok"
    assert all(p.stat().st_size < 2 * MiB for p in (pytester.path / OUTPUT).rglob("*") if p.is_file())


def test_error_bodies_keep_their_64_kb_bound_under_a_larger_cap(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(500, b"e" * (4 * MiB)))
    client = client_for(v1, retries=0)

    result = client.complete("hi")

    assert result.error is not None
    assert result.error.body_excerpt is not None
    assert result.error.status == 500 and len(result.error.body_excerpt) <= EXCERPT_LIMIT + 1
    client.close()


# -- 7. connecting has a timeout of its own ----------------------------------------------------------------


def test_a_connect_that_never_completes_times_out_apart_from_the_deadline_and_is_retried() -> None:
    with unanswered_url() as url:
        client = client_for(url + "/v1", retries=1, timeout=60, connect_timeout=0.5)
        started = time.monotonic()
        result = client.complete("hi")
        took = time.monotonic() - started
        client.close()

    assert result.error is not None
    assert result.error.kind == "connection" and result.error.type == "connect_timeout"
    assert "within 0.5 s (setting connect_timeout)" in result.error.message
    assert result.attempts == 2 and took < 10  # two connects of 0.5 s, not the 60 s deadline


def test_a_session_against_an_address_that_never_answers_stops_within_the_connect_timeout(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "t"}])
    with unanswered_url() as url:
        started = time.monotonic()
        run = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", url + "/v1",
                                            "--llmbench-connect-timeout", "0.5", "-p", "no:cacheprovider",
                                            timeout=60)
        took = time.monotonic() - started

    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert "within 0.5 s (--llmbench-connect-timeout)" in run.stdout.str() + run.stderr.str()
    assert took < 30


# -- 2. keys never escape masking --------------------------------------------------------------------------

KEY = "sk-hostile/key+Zq8Xv3Lm0Pw7"  # '/' and '+' so that each encoding looks different
AUTH_TOKEN, GOOG_KEY = "xat-9b1e77c2d0f4", "goog-4f0d8e2a91c3"


def quoting_key(status: int, build: Any) -> Reply:
    """A reply that quotes the key the request carried, placed by ``build(key) -> body``."""
    return Reply(echo=lambda received: Reply(status, build(received.headers["authorization"].split()[-1])))


def test_keys_straddling_every_cut_and_in_every_encoding_are_masked_everywhere(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    excerpt_cut = quoting_key(500, lambda key: "x" * (EXCERPT_LIMIT - 6) + key)
    message_cut = quoting_key(400, lambda key: {"error": {"message": "y" * (MESSAGE_LIMIT - 6) + key}})
    escaped = quoting_key(500, lambda key: json.dumps({"error": {"message": "bad key", "sent": "@1", "all": "@2"}})
                          .replace("@1", key.replace("/", "\\/"))
                          .replace("@2", "".join(f"\\u{ord(c):04x}" for c in key)))
    stream_cut = Reply(200, chunks=["data: " + "z" * 195 + KEY + "\n\n"], headers={"Content-Type": "text/event-stream"})
    redirect = Reply.redirect("http://127.0.0.1:9/next?key=" + quote(KEY, safe=""))
    fault_server.reply(excerpt_cut, message_cut, escaped, stream_cut, redirect, path="/v1/completions")
    tests: list[dict[str, Any]] = [{"id": "excerpt"}, {"id": "message"}, {"id": "escaped"},
                                   {"id": "stream", "stream": True},
             {"id": "redirect"}]

    run = run_session(pytester, fault_server, tests, "-v", "-rA", "--junitxml", "junit.xml",
                      "--llmbench-header", f"X-Auth-Token: {AUTH_TOKEN}",
                      "--llmbench-header", f"X-Goog-Api-Key: {GOOG_KEY}", env={"LLMBENCH_API_KEY": KEY})

    run.assert_outcomes(failed=5)
    sent = fault_server.received[-1].headers
    assert sent["x-auth-token"] == AUTH_TOKEN and sent["authorization"] == f"Bearer {KEY}"
    printed = run.stdout.str() + run.stderr.str()
    written = {p: p.read_bytes() for p in pytester.path.rglob("*") if p.is_file()}
    assert any(p.name == "junit.xml" for p in written) and any(p.name.startswith("batch_") for p in written)
    for form in (KEY[:5], quote(KEY, safe="")[:12], "\\u0073\\u006b", AUTH_TOKEN, GOOG_KEY):
        assert form not in printed, form
        assert [p for p, data in written.items() if form.encode() in data] == [], form
    options = batch_of(pytester.path / OUTPUT)["run"]["options"]
    assert options["header"] == ["X-Auth-Token: ***", "X-Goog-Api-Key: ***"]
    saved = results_by_id(pytester.path / OUTPUT)
    assert saved["excerpt"]["error"]["body_excerpt"].startswith("x" * 100)  # the rest of the text stays
    assert saved["redirect"]["error"]["kind"] == "redirect" and "***" in saved["redirect"]["error_message"]


# -- 8. a request sent twice says so ------------------------------------------------------------------------


def test_a_result_retried_after_a_read_timeout_is_marked_possibly_duplicated(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION, delay=2.0), Reply.json(COMPLETION))
    client = client_for(v1, timeout=0.5, retries=1, retry_read_timeouts=True)

    result = client.complete("hi")

    assert result.success is True and result.possibly_duplicated is True
    assert [a.possibly_duplicated for a in result.attempt_log] == [False, True]
    client.close()


def test_a_result_retried_after_a_refused_connection_is_not_marked(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(503), Reply.json(COMPLETION))
    client = client_for(v1, retries=1)

    result = client.complete("hi")

    assert result.success is True and result.possibly_duplicated is False
    client.close()
