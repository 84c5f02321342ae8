from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from faultserver import COMPLETION, OVERLOADED, FaultServer, Reply, client_for, refusing_url
from requests.structures import CaseInsensitiveDict

from pytest_llmbench.http.retry import (
    BACKOFF_CAP,
    RetryPolicy,
    backoff,
    decide,
    retry_after,
    status_is_transient,
)
from pytest_llmbench.result import ApiError

POLICY = RetryPolicy(retries=3, retry_delay=1.0, max_retry_wait=120.0)



def http(status: int) -> ApiError:
    return ApiError("auth" if status in (401, 403) else "http", "x", status)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_classed_as_transient(status: Any) -> None:
    assert status_is_transient(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_classed_as_final(status: Any) -> None:
    assert not status_is_transient(status)
    assert not decide(http(status), None, 0, POLICY).retry


def test_x_should_retry_overrides_the_status_rule_both_ways() -> None:
    assert status_is_transient(400, {"X-Should-Retry": "true"})
    assert not status_is_transient(503, {"x-should-retry": "false"})
    assert status_is_transient(503, {"x-should-retry": "maybe"})  # anything else: the status rule


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_never_retried_whatever_the_server_says(status: Any) -> None:
    assert not decide(http(status), {"x-should-retry": "true"}, 0, POLICY).retry


def test_retry_after_seconds_and_fractions() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": "0.25"}) == 0.25


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "30"}) == 1.5


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=42), usegmt=True)

    assert retry_after({"Retry-After": header}, now=now) == 42.0


def test_retry_after_in_the_past_or_negative_reads_as_zero() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after({"Retry-After": format_datetime(now - timedelta(hours=1), usegmt=True)}, now=now) == 0.0
    assert retry_after({"Retry-After": "-3"}) == 0.0


@pytest.mark.parametrize("headers", [
    {"Retry-After": "0"},
    {"retry-after-ms": "-50"},
    {"Retry-After": format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)},
])
def test_a_wait_of_zero_or_a_date_in_the_past_gets_our_backoff_not_an_instant_retry(headers: Any) -> None:
    decision = decide(http(429), headers, 1, POLICY, rand=lambda: 1.0)

    assert decision.retry and decision.delay == 2.0


@pytest.mark.parametrize("headers", [None, {}, {"Retry-After": "soon"}, {"Retry-After": "nan"}])
def test_missing_or_unreadable_retry_after_is_none(headers: Any) -> None:
    assert retry_after(headers) is None


def test_retry_after_reads_requests_header_mapping() -> None:
    assert retry_after(CaseInsensitiveDict({"RETRY-AFTER": "3"})) == 3.0


def test_backoff_doubles_and_jitter_scales_down_by_at_most_a_quarter() -> None:
    assert backoff(0, 1.0, rand=lambda: 1.0) == 1.0
    assert backoff(3, 1.0, rand=lambda: 1.0) == 8.0
    assert backoff(3, 1.0, rand=lambda: 0.0) == 6.0


def test_backoff_is_capped() -> None:
    assert backoff(20, 1.0, rand=lambda: 1.0) == BACKOFF_CAP
    assert all(0.75 * BACKOFF_CAP <= backoff(10, 1.0) <= BACKOFF_CAP for _ in range(50))


def test_decide_uses_backoff_without_retry_after() -> None:
    decision = decide(http(503), None, 2, POLICY, rand=lambda: 1.0)

    assert decision.retry and decision.delay == 4.0


def test_decide_uses_the_servers_wait_when_given() -> None:
    assert decide(http(429), {"Retry-After": "2.5"}, 0, POLICY).delay == 2.5


def test_decide_refuses_a_wait_beyond_the_cap_and_says_why() -> None:
    decision = decide(http(429), {"Retry-After": "300"}, 0, POLICY)

    assert not decision.retry
    assert decision.refusal is not None
    assert "300 s" in decision.refusal and "120 s" in decision.refusal
    assert "(setting max_retry_wait)" in decision.refusal


def test_decide_stops_when_retries_are_used_up() -> None:
    assert decide(http(503), None, 2, RetryPolicy(retries=3)).retry
    assert not decide(http(503), None, 3, RetryPolicy(retries=3)).retry
    assert not decide(http(503), None, 0, RetryPolicy(retries=0)).retry


def test_connection_failures_before_an_answer_retry_except_tls() -> None:
    for type_ in ("refused", "reset", "dns", "connect_timeout"):
        assert decide(ApiError("connection", "no", type=type_), None, 0, POLICY).retry
    assert not decide(ApiError("connection", "bad cert", type="tls"), None, 0, POLICY).retry


@pytest.mark.parametrize(("kind", "type_"), [("read_timeout", None), ("deadline", None), ("connection", "cut")])
def test_failures_after_sending_retry_only_when_opted_in(kind: Any, type_: Any) -> None:
    error = ApiError(kind, "slow", type=type_)

    assert not decide(error, None, 0, POLICY).retry
    assert decide(error, None, 0, RetryPolicy(retry_read_timeouts=True)).retry


@pytest.mark.parametrize("kind", ["redirect", "bad_response", "stream", "request"])
def test_other_failures_never_retry(kind: Any) -> None:
    assert not decide(ApiError(kind, "no", 200), None, 0, RetryPolicy(retry_read_timeouts=True)).retry


# --- The rules over real HTTP: the client's loop ----------------------------------------------------

def test_503_is_retried_until_it_succeeds(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(503, OVERLOADED), Reply(503, OVERLOADED), Reply.json(COMPLETION))

    result = client_for(v1).complete("x")

    assert result.success and result.attempts == 3
    assert [(a.number, a.status) for a in result.attempt_log] == [(1, 503), (2, 503), (3, 200)]
    assert result.attempt_log[0].error == "HTTP 503 (Service Unavailable): model overloaded"
    assert 0.0075 <= result.attempt_log[0].delay_s <= 0.01
    assert 0.015 <= result.attempt_log[1].delay_s <= 0.02
    assert result.attempt_log[2].delay_s == 0.0 and result.attempt_log[2].error is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 504])
def test_transient_statuses_are_retried(fault_server: FaultServer, v1: str, status: Any) -> None:
    fault_server.reply(Reply(status, {"error": {"message": "later"}}), Reply.json(COMPLETION))

    result = client_for(v1).complete("x")

    assert result.success
    assert [a.status for a in result.attempt_log] == [status, 200]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(fault_server: FaultServer, v1: str, status: Any) -> None:
    fault_server.always(Reply(status, {"error": {"message": "no"}}))

    result = client_for(v1).complete("x")

    assert not result.success
    assert result.attempts == 1 and len(fault_server.received) == 1
    assert result.error is not None
    assert result.error.status == status


def test_retries_that_run_out_report_every_attempt(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(503, OVERLOADED))

    result = client_for(v1, retries=2).complete("x")

    assert not result.success
    assert result.error_message == "HTTP 503 (Service Unavailable): model overloaded — after 3 attempts"
    assert len(result.attempt_log) == 3 and len(fault_server.received) == 3
    assert result.error is not None
    assert result.error.type == "ServiceUnavailableError"


def test_429_waits_for_retry_after(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.4"}), Reply.json(COMPLETION))

    started = time.monotonic()
    result = client_for(v1).complete("x")

    assert result.success
    assert result.attempt_log[0].delay_s == 0.4
    assert time.monotonic() - started >= 0.35


def test_retry_after_ms_is_honoured(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(503, OVERLOADED, {"retry-after-ms": "150", "Retry-After": "60"}), Reply.json(COMPLETION))

    result = client_for(v1).complete("x")

    assert result.success
    assert result.attempt_log[0].delay_s == 0.15


def test_retry_after_beyond_the_cap_fails_at_once_and_says_so(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(429, {"error": {"message": "quota"}}, {"Retry-After": "300"}))

    started = time.monotonic()
    result = client_for(v1, max_retry_wait=120.0).complete("x")

    assert time.monotonic() - started < 10
    assert result.attempts == 1
    assert result.error_message is not None
    assert "300 s" in result.error_message and "(setting max_retry_wait)" in result.error_message


def test_retry_after_zero_waits_the_backoff_instead(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}), Reply.json(COMPLETION))

    result = client_for(v1, retry_delay=0.2).complete("x")

    assert result.success and 0.15 <= result.attempt_log[0].delay_s <= 0.2


def test_x_should_retry_false_stops_a_503(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(503, OVERLOADED, {"x-should-retry": "false"}))

    assert client_for(v1).complete("x").attempts == 1


def test_x_should_retry_true_retries_a_400(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply(400, {"error": {"message": "busy"}}, {"x-should-retry": "true"}), Reply.json(COMPLETION))

    result = client_for(v1).complete("x")

    assert result.success and result.attempts == 2


def test_x_should_retry_true_does_not_retry_a_401(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(401, {"error": {"message": "bad key"}}, {"x-should-retry": "true"}))

    result = client_for(v1).complete("x")

    assert result.error is not None
    assert result.error.kind == "auth" and result.attempts == 1 and len(fault_server.received) == 1


def test_connection_refused_is_retried() -> None:
    with refusing_url() as url:
        result = client_for(url + "/v1", retries=2).complete("x")

    assert not result.success and result.attempts == 3
    assert all(a.status is None for a in result.attempt_log)
    assert result.error is not None
    assert (result.error.kind, result.error.type) == ("connection", "refused")
    assert result.error_message is not None
    assert "connection refused" in result.error_message


def test_a_hang_up_after_the_whole_request_was_read_follows_the_read_timeout_policy(fault_server: FaultServer, v1: str) -> None:
    """The server had the whole request when it hung up: it may have done the work, as after a read timeout."""
    fault_server.reply(Reply(hang_up=True), Reply(hang_up=True), Reply.json(COMPLETION))

    once = client_for(v1).complete("x")
    again = client_for(v1, retry_read_timeouts=True).complete("x")

    assert not once.success and once.attempts == 1 and not once.possibly_duplicated
    assert once.error is not None
    assert (once.error.kind, once.error.type) == ("connection", "reset_after_send")
    assert once.error_message is not None
    assert "closed the connection without answering after the whole request was sent" in once.error_message
    assert again.success and again.attempts == 2 and again.possibly_duplicated
    assert again.attempt_log[0].status is None and again.attempt_log[1].possibly_duplicated
    assert [r.method for r in fault_server.received] == ["POST"] * 3


def test_a_body_cut_short_is_not_retried_by_default(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION, cut_after=10))

    result = client_for(v1).complete("x")

    assert result.error is not None
    assert (result.error.kind, result.error.type) == ("connection", "cut")
    assert result.attempts == 1 and len(fault_server.received) == 1
    assert result.error_message is not None
    assert "broke off" in result.error_message and "10 bytes read" in result.error_message


def test_a_body_cut_short_is_retried_when_opted_in(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION, cut_after=10), Reply.json(COMPLETION))

    result = client_for(v1, retry_read_timeouts=True).complete("x")

    assert result.success and result.attempts == 2


def test_a_silent_server_is_not_retried_by_default(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(COMPLETION, delay=1.5))

    result = client_for(v1, timeout=0.3).complete("x")

    assert result.error is not None
    assert result.error.kind == "deadline"
    assert result.attempts == 1 and len(fault_server.received) == 1


def test_a_silent_server_is_retried_when_opted_in(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION, delay=1.5), Reply.json(COMPLETION))

    result = client_for(v1, timeout=0.3, retry_read_timeouts=True).complete("x")

    assert result.success and result.attempts == 2
    assert result.attempt_log[0].error is not None
    assert "no response came within the 0.3 s deadline (setting timeout)" in result.attempt_log[0].error
