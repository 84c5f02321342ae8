from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import requests
from faultserver import FaultServer, Reply, refusing_url

from pytest_llmbench.http.api_errors import (
    EXCERPT_LIMIT,
    MESSAGE_LIMIT,
    bad_response,
    clip,
    describe,
    http_error,
    network_error,
    parse_error_body,
)
from pytest_llmbench.result import ApiError


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_openai_error_object() -> None:
    error = http_error(429, body({"error": {"message": "Rate limit reached", "type": "requests",
                                            "param": None, "code": "rate_limit_exceeded"}}))

    assert (error.kind, error.status, error.message, error.type) == ("http", 429, "Rate limit reached", "requests")
    assert error.details == {"code": "rate_limit_exceeded"}


def test_new_vllm_error_object_with_integer_code() -> None:
    error = http_error(400, body({"error": {"message": "bad temperature", "type": "BadRequestError",
                                            "param": "temperature", "code": 400}}))

    assert error.message == "bad temperature"
    assert error.details == {"param": "temperature", "code": 400}


def test_old_vllm_top_level_error() -> None:
    error = http_error(400, body({"object": "error", "message": "model not found", "type": "NotFoundError",
                                  "param": None, "code": 404}))

    assert (error.message, error.type, error.details) == ("model not found", "NotFoundError", {"code": 404})


def test_error_as_a_plain_string() -> None:
    assert http_error(500, body({"error": "CUDA out of memory"})).message == "CUDA out of memory"


def test_fastapi_validation_detail_list() -> None:
    detail = [{"loc": ["body", "prompt"], "msg": "field required"}, {"loc": ["body"], "msg": "bad max_tokens"}]

    assert http_error(422, body({"detail": detail})).message == "field required; bad max_tokens"


def test_html_502_page_gives_its_title() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>nginx</body></html>"

    error = http_error(502, page)

    assert error.message == "502 Bad Gateway"
    assert error.body_excerpt is not None
    assert error.body_excerpt.startswith("<html>")


def test_html_page_without_title_gives_its_first_text() -> None:
    page = b"<!DOCTYPE html><html><style>p{}</style><body><p>Upstream &amp; proxy down</p></body></html>"

    assert http_error(503, page).message == "Upstream & proxy down"


def test_html_is_read_whatever_the_case_of_its_tags() -> None:
    titled = b"<HTML><HEAD><TITLE>Real &amp; true</TITLE></HEAD><BODY>other</BODY></HTML>"
    untitled = b"<HTML><BODY><SCRIPT>var x = '<p>no</p>';</Script><STYLE>p {}</STYLE><P>Down</P></BODY></HTML>"

    assert http_error(502, titled).message == "Real & true"
    assert http_error(502, untitled).message == "Down"


@pytest.mark.parametrize("page", [
    b"<html>" + b"<title>" * 150_000,  # every title open, none closed
    b"<html><body>" + b"<script>x" * 100_000 + b"<style>" * 50_000,  # scripts and styles never closed
    b"<!doctype html>" + b"<" * 1_000_000,
    b"<html><title>" + b"word " * 200_000 + b"</title>",
], ids=["unclosed-titles", "unclosed-scripts", "bare-brackets", "huge-title"])
def test_a_hostile_html_page_is_read_fast_and_gives_a_bounded_message(page: Any) -> None:
    started = time.monotonic()
    error = http_error(502, page)

    assert time.monotonic() - started < 2  # generous: a backtracking regex took many seconds on 256 KB
    assert error.message is not None
    assert error.body_excerpt is not None
    assert 0 < len(error.message) <= 201 and len(error.body_excerpt) <= EXCERPT_LIMIT + 1


@pytest.mark.parametrize("message", ["m" * 30_000, "1" * 30_000, "maximum context length is " + "9" * 30_000])
def test_a_huge_server_message_is_kept_to_its_limit(message: Any) -> None:
    started = time.monotonic()
    error = http_error(400, body({"error": {"message": message, "param": message}}))

    assert time.monotonic() - started < 2
    assert len(error.message) == MESSAGE_LIMIT + 1 and error.message.endswith("…")
    assert len(error.details["param"]) == MESSAGE_LIMIT + 1


def test_a_message_longer_than_the_body_limit_keeps_its_start() -> None:
    error = http_error(500, body({"error": {"message": "GPU fault: " + "m" * 100_000}}))

    assert error.message.startswith("GPU fault: mmm") and len(error.message) < MESSAGE_LIMIT + 50


def test_only_the_start_of_a_huge_error_body_is_looked_at() -> None:
    big = body({"error": {"message": "starts well", "pad": "x" * 2_000_000}})

    error = http_error(500, big)

    assert error.message == "starts well (from a truncated or invalid JSON body)"


def test_clip_cuts_with_an_ellipsis_and_keeps_short_text() -> None:
    assert clip("abcdef", 3) == "abc…"
    assert clip("abc", 3) == "abc"
    assert clip("") is None and clip(None) is None


def test_bad_response_excerpt_is_bounded_and_starts_the_body() -> None:
    error = bad_response("the response body is not JSON", "é".encode() * 1_000_000)

    assert (error.kind, error.status) == ("bad_response", 200)
    assert error.body_excerpt is not None
    assert error.body_excerpt.startswith("éé") and len(error.body_excerpt) <= EXCERPT_LIMIT + 1


def test_truncated_json_keeps_the_message_it_got() -> None:
    error = http_error(500, b'{"error": {"message": "engine \\"dead\\"", "type": "Internal')

    assert error.message == 'engine "dead" (from a truncated or invalid JSON body)'


def test_truncated_json_without_message_says_so() -> None:
    assert http_error(500, b'{"error": {"typ').message.startswith("truncated or invalid JSON body")


def test_plain_text_body_gives_its_first_line() -> None:
    assert http_error(503, b"\n  Service warming up\nretry later").message == "Service warming up"


def test_empty_body() -> None:
    error = http_error(503, b"")

    assert error.message == "empty response body"
    assert error.body_excerpt is None


def test_unknown_json_shape_is_shown() -> None:
    assert "unexpected error body" in http_error(500, body([1, 2])).message


def test_body_excerpt_is_bounded() -> None:
    error = http_error(500, b"x" * 10_000)

    assert error.body_excerpt is not None
    assert len(error.body_excerpt) <= EXCERPT_LIMIT + 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_say_so(status: Any) -> None:
    error = http_error(status, body({"error": {"message": "Invalid API key", "type": "invalid_request_error"}}))

    assert error.kind == "auth"
    assert "authentication failed" in error.message and "Invalid API key" in error.message


def test_openai_context_length_figures() -> None:
    message = ("This model's maximum context length is 4,097 tokens. However, you requested 4200 tokens "
               "(200 in the messages, 4000 in the completion). Please reduce the length.")

    error = http_error(400, body({"error": {"message": message, "type": "invalid_request_error",
                                            "code": "context_length_exceeded"}}))

    assert error.details == {"code": "context_length_exceeded", "max_context_tokens": 4097,
                             "requested_tokens": 4200, "message_tokens": 200, "completion_tokens": 4000}


def test_vllm_context_length_figures() -> None:
    message = ("This model's maximum context length is 2048 tokens. However, your request has 3000 input "
               "tokens. Please reduce the length of the input messages.")

    details = http_error(400, body({"object": "error", "message": message, "code": 400})).details

    assert (details["max_context_tokens"], details["requested_tokens"]) == (2048, 3000)


def test_llama_cpp_context_fields_are_kept_and_named() -> None:
    error = http_error(400, body({"error": {"code": 400, "message": "the request exceeds the available context size",
                                            "type": "exceed_context_size_error",
                                            "n_prompt_tokens": 5000, "n_ctx": 4096}}))

    assert error.type == "exceed_context_size_error"
    assert error.details == {"code": 400, "n_prompt_tokens": 5000, "n_ctx": 4096,
                             "max_context_tokens": 4096, "requested_tokens": 5000}


def test_parse_error_body_of_a_200_error() -> None:
    assert parse_error_body('{"error": {"message": "boom"}}') == ("boom", None, {})


def test_describe_gives_status_phrase_and_attempts() -> None:
    error = ApiError("http", "model overloaded", 503)

    assert describe(error) == "HTTP 503 (Service Unavailable): model overloaded"
    assert describe(error, 4) == "HTTP 503 (Service Unavailable): model overloaded — after 4 attempts"
    assert describe(ApiError("connection", "connection refused by h:1")) == "connection refused by h:1"


def test_refused_connection_is_named() -> None:
    with refusing_url() as url, pytest.raises(requests.ConnectionError) as caught:
        requests.get(url, timeout=5)

    error = network_error(caught.value, "127.0.0.1:1")

    assert (error.kind, error.type, error.message) == ("connection", "refused", "connection refused by 127.0.0.1:1")


def test_hang_up_without_answer_is_a_reset() -> None:
    with FaultServer() as server, pytest.raises(requests.ConnectionError) as caught:
        server.always(Reply(hang_up=True))
        requests.get(server.url, timeout=5)

    error = network_error(caught.value, "127.0.0.1:1")

    assert (error.kind, error.type) == ("connection", "reset")
    assert "closed the connection" in error.message


def test_dns_failure_is_named() -> None:
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as cause:
            raise requests.ConnectionError("Max retries exceeded") from cause
    except requests.ConnectionError as exc:
        error = network_error(exc, "llm.example:443")

    assert (error.kind, error.type) == ("connection", "dns")
    assert "llm.example:443" in error.message and "DNS" in error.message
