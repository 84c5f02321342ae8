from __future__ import annotations

import time
from typing import Any

import pytest
from faultserver import CHAT, COMPLETION, OVERLOADED, FaultServer, Reply, client_for, refusing_url

from pytest_llmbench import __version__
from pytest_llmbench.exceptions import ClientError, EndpointUnreachable
from pytest_llmbench.http.client import ClientConfig
from pytest_llmbench.http.openai import build_body, models_url, resolve_url
from pytest_llmbench.result import MIN_RATE_TOKENS, estimate_tokens

KEY = "sk-llmbench-unique-7f3a9c51e2"



# --- URLs and bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "api_type", "expected"), [
    ("http://h/v1", "completions", ("http://h/v1/completions", "completions")),
    ("http://h/v1/", "chat", ("http://h/v1/chat/completions", "chat")),
    ("http://h/v1/completions", "chat", ("http://h/v1/completions", "completions")),
    ("http://h/v1/chat/completions/", "completions", ("http://h/v1/chat/completions", "chat")),
    ("http://h/openai/deployments/x", "chat", ("http://h/openai/deployments/x/chat/completions", "chat")),
    ("http://h/v1?api-version=2", "chat", ("http://h/v1/chat/completions?api-version=2", "chat")),
])
def test_resolve_url_lets_the_url_fix_the_shape_or_act_as_base(endpoint: Any, api_type: Any, expected: Any) -> None:
    assert resolve_url(endpoint, api_type) == expected


@pytest.mark.parametrize("endpoint", ["http://h/v1", "http://h/v1/completions", "http://h/v1/chat/completions/"])
def test_models_url_comes_from_the_same_base(endpoint: Any) -> None:
    assert models_url(endpoint) == "http://h/v1/models"


def test_build_body_leaves_out_unset_parameters_and_passes_unknown_ones() -> None:
    body = build_body(prompt="Hi", parameters={"max_tokens": 5, "temperature": 0.0, "top_p": None,
                                               "stop": ["\n"], "seed": 7}, model="m")

    assert body == {"model": "m", "prompt": "Hi", "max_tokens": 5, "temperature": 0.0, "stop": ["\n"],
                    "seed": 7, "stream": False}


def test_build_body_streaming_asks_for_usage() -> None:
    body = build_body(messages=[{"role": "user", "content": "Hi"}], parameters={"stream": False}, model="m",
                      stream=True)

    assert body == {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True,
                    "stream_options": {"include_usage": True}}


@pytest.mark.parametrize(("setting", "value"), [("retries", -1), ("retries", 1.5), ("timeout", 0), ("timeout", -2.0),
                                                ("timeout", float("nan")), ("retry_delay", -0.1),
                                                ("max_retry_wait", -1)])
def test_impossible_settings_are_refused_by_name(setting: Any, value: Any) -> None:
    with pytest.raises(ValueError, match=setting):
        ClientConfig("http://127.0.0.1:9/v1", **{setting: value})


def test_no_retries_still_makes_one_attempt(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(503, OVERLOADED))

    result = client_for(v1, retries=0).complete("x")

    assert result.error is not None
    assert result.attempts == 1 and result.error.status == 503


def test_build_body_needs_exactly_one_of_prompt_and_messages() -> None:
    with pytest.raises(ValueError):
        build_body(prompt="a", messages=[{"role": "user", "content": "b"}])
    with pytest.raises(ValueError):
        build_body(parameters={})


# --- The two API shapes on the wire ------------------------------------------------------------------

def test_completions_request_body_and_headers(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION))
    client = client_for(v1, api_key=KEY, headers={"X-Team": "bench"})

    result = client.complete("Capital of France?", max_tokens=5, temperature=0.0, top_p=None, stop=["\n"], seed=7)

    sent = fault_server.received[0]
    assert (sent.method, sent.path) == ("POST", "/v1/completions")
    assert sent.json == {"model": "m", "prompt": "Capital of France?", "max_tokens": 5, "temperature": 0.0,
                         "stop": ["\n"], "seed": 7, "stream": False}
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-team"] == "bench"
    assert sent.headers["user-agent"] == f"pytest-llmbench/{__version__}"
    assert sent.headers["content-type"] == "application/json"
    assert (result.success, result.response_text, result.finish_reason) == (True, "Paris", "stop")
    assert (result.prompt_tokens, result.completion_tokens, result.tokens_estimated) == (5, 1, False)
    assert (result.test_id, result.test_name, result.category) == ("adhoc", "adhoc", "adhoc")
    assert (result.api_type, result.model, result.attempts) == ("completions", "m", 1)
    assert result.request == sent.json
    assert result.api_response == COMPLETION


def test_chat_request_body_and_answer(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(CHAT))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

    result = client_for(v1).chat(messages, max_tokens=2)

    assert fault_server.received[0].path == "/v1/chat/completions"
    assert fault_server.received[0].json == {"model": "m", "messages": messages, "max_tokens": 2, "stream": False}
    assert (result.response_text, result.finish_reason, result.api_type) == ("Hello!", "length", "chat")


def test_no_auth_header_without_a_key(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION))

    client_for(v1).complete("x")

    assert "authorization" not in fault_server.received[0].headers


def test_chat_url_sends_a_prompt_as_one_user_message(fault_server: FaultServer) -> None:
    fault_server.reply(Reply.json(CHAT))

    result = client_for(fault_server.url_for("/v1/chat/completions")).complete("Hi there", max_tokens=3)

    assert fault_server.received[0].path == "/v1/chat/completions"
    assert fault_server.received[0].json == {"model": "m", "messages": [{"role": "user", "content": "Hi there"}],
                                             "max_tokens": 3, "stream": False}
    assert (result.api_type, result.response_text) == ("chat", "Hello!")
    assert result.request == fault_server.received[0].json


def test_completions_url_refuses_chat_messages_without_a_request(fault_server: FaultServer) -> None:
    result = client_for(fault_server.url_for("/v1/completions")).chat([{"role": "user", "content": "Hi"}])

    assert not result.success
    assert result.error is not None
    assert result.error.kind == "request"
    assert result.error_message is not None
    assert "completions" in result.error_message and "chat/completions" in result.error_message
    assert fault_server.received == []
    assert result.attempts == 0


def test_model_argument_overrides_the_clients_model(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json(COMPLETION))

    result = client_for(v1, model="default-model").complete("x", model="other-model")

    assert fault_server.received[0].json["model"] == "other-model"
    assert result.model == "other-model"


def test_without_a_model_the_first_listed_one_is_used_and_asked_once(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json({"object": "list", "data": [{"id": "first"}, {"id": "second"}]}),
                        path="/v1/models")
    fault_server.always(Reply.json(COMPLETION), path="/v1/completions")
    client = client_for(v1, model=None)

    client.complete("a")
    client.complete("b")

    assert fault_server.paths() == ["/v1/models", "/v1/completions", "/v1/completions"]
    assert [r.json["model"] for r in fault_server.received[1:]] == ["first", "first"]
    assert client.resolve_model() == "first"


def test_a_listed_model_and_a_retry_script_do_not_mix(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json({"data": [{"id": "listed"}]}), path="/v1/models")
    fault_server.reply(Reply(503, OVERLOADED), Reply.json(COMPLETION))

    result = client_for(v1, model=None).complete("x")

    assert result.success and result.model == "listed"
    assert fault_server.paths() == ["/v1/models", "/v1/completions", "/v1/completions"]


def test_list_models_returns_ids(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json({"data": [{"id": "a", "object": "model"}, {"id": "b"}]}))

    assert client_for(v1).list_models() == ["a", "b"]
    assert fault_server.received[0].method == "GET"


def test_list_models_rejects_a_body_without_ids(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json({"models": ["a"]}))

    with pytest.raises(ClientError, match="model list"):
        client_for(v1).list_models()


def test_an_empty_model_list_fails_the_request_with_a_reason(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json({"data": []}), path="/v1/models")

    result = client_for(v1, model=None).complete("x")

    assert not result.success
    assert result.error_message is not None
    assert "lists none" in result.error_message
    assert fault_server.paths() == ["/v1/models"]


# --- Authentication (deadlines, redirects and connections: test_transport.py) -------------------------

@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_say_authentication_failed(fault_server: FaultServer, v1: str, status: Any) -> None:
    fault_server.always(Reply(status, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}))

    result = client_for(v1, api_key=KEY).complete("x")

    assert result.error is not None
    assert result.error.kind == "auth"
    assert result.error_message is not None
    assert "authentication failed" in result.error_message


# --- Execution time -------------------------------------------------------------------------------

def test_execution_time_is_the_final_attempt_alone(fault_server: FaultServer, v1: str) -> None:
    ten = {**COMPLETION, "usage": {"prompt_tokens": 5, "completion_tokens": MIN_RATE_TOKENS}}
    fault_server.reply(Reply(503, OVERLOADED, delay=0.5), Reply.json(ten))

    result = client_for(v1).complete("x")

    assert result.attempt_log[0].elapsed_s >= 0.45
    assert 0 < result.execution_time < 0.45
    assert result.execution_time == result.attempt_log[-1].elapsed_s
    assert result.tokens_per_second == pytest.approx(MIN_RATE_TOKENS / result.execution_time)


# --- Error bodies and bad answers -------------------------------------------------------------------

def test_server_error_details_reach_the_result(fault_server: FaultServer, v1: str) -> None:
    message = "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens."
    fault_server.always(Reply(400, {"object": "error", "message": message, "type": "BadRequestError", "code": 400}))

    result = client_for(v1).complete("x")

    assert result.error is not None
    assert result.error.kind == "http" and result.error.type == "BadRequestError"
    assert result.error.details["max_context_tokens"] == 2048 and result.error.details["requested_tokens"] == 3000
    assert result.error_message == f"HTTP 400 (Bad Request): {message}"
    assert result.error.body_excerpt is not None
    assert '"object": "error"' in result.error.body_excerpt


def test_html_gateway_page_is_read_and_retried(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(502, "<html><title>502 Bad Gateway</title><body>nginx</body></html>",
                              {"Content-Type": "text/html"}))

    result = client_for(v1, retries=1).complete("x")

    assert result.error_message == "HTTP 502 (Bad Gateway): 502 Bad Gateway — after 2 attempts"


def test_a_200_without_an_answer_fails_without_retrying(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json({"object": "text_completion"}))

    result = client_for(v1).complete("x")

    assert not result.success
    assert result.error is not None
    assert result.error.kind == "bad_response"
    assert result.error_message == "HTTP 200 (OK): the response has no choices"
    assert result.attempts == 1 and result.attempt_log[0].error == result.error_message


def test_a_200_without_usage_gets_an_estimated_completion_count(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json({"choices": [{"index": 0, "text": "a rather longer answer text"}]}))

    result = client_for(v1).complete("What is the question?")

    assert result.tokens_estimated
    assert result.completion_tokens == estimate_tokens("a rather longer answer text")
    assert result.prompt_tokens is None  # not reported: no guess passed off as a count


# --- Reachability -----------------------------------------------------------------------------------

def test_check_reachable_fails_clearly_when_nothing_listens() -> None:
    with refusing_url() as url, pytest.raises(EndpointUnreachable, match="connection refused") as caught:
        client_for(url + "/v1").check_reachable()

    assert str(caught.value).startswith("Cannot reach the LLM server at http://127.0.0.1:")


@pytest.mark.parametrize("status", [401, 403])
def test_check_reachable_fails_on_rejected_credentials(fault_server: FaultServer, v1: str, status: Any) -> None:
    fault_server.always(Reply(status, {"error": {"message": "bad key"}}))

    with pytest.raises(EndpointUnreachable, match="authentication failed"):
        client_for(v1, api_key=KEY).check_reachable()


@pytest.mark.parametrize("status", [200, 404, 500])
def test_any_other_answer_counts_as_reachable(fault_server: FaultServer, v1: str, status: Any) -> None:
    fault_server.always(Reply(status, {"data": []}))

    client_for(v1).check_reachable()

    assert fault_server.paths() == ["/v1/models"]


def test_check_reachable_does_not_wait_for_a_trickling_server(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json({"data": []}, header_trickle=0.2))

    started = time.monotonic()
    with pytest.raises(EndpointUnreachable, match="did not answer within 1 s"):
        client_for(v1, timeout=1.0).check_reachable()

    assert time.monotonic() - started < 4


def test_check_reachable_treats_a_redirect_as_unreachable_and_names_the_target(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.redirect("https://127.0.0.1:8443/v1/models", status=301))

    with pytest.raises(EndpointUnreachable) as caught:
        client_for(v1).check_reachable()

    assert "HTTP 301" in str(caught.value) and "https://127.0.0.1:8443/v1/models" in str(caught.value)


# --- Streamed answers (parsing: test_streaming.py; reading: test_transport.py) ------------------------

def test_a_streamed_answer_comes_back_with_timings(fault_server: FaultServer, v1: str) -> None:
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "text": w, "finish_reason": f}]}
                                    for w, f in (("Pa", None), ("ris", "stop"))]
    chunks.append({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}})
    fault_server.reply(Reply.sse(chunks, gap=0.05))

    result = client_for(v1).complete("x", stream=True)

    assert fault_server.received[0].json["stream_options"] == {"include_usage": True}
    assert result.success and result.stream and result.response_text == "Paris"
    assert (result.prompt_tokens, result.completion_tokens) == (4, 2)
    assert result.ttft is not None and len(result.itl) == 1 and result.tpot is not None


def test_a_stream_without_usage_counts_one_token_per_text_chunk(fault_server: FaultServer, v1: str) -> None:
    words = ["The", " answer", " is", " a", " fairly", " long", " sentence."]
    fault_server.reply(Reply.sse([{"choices": [{"index": 0, "text": w, "finish_reason": None if n < 6 else "stop"}]}
                                  for n, w in enumerate(words)]))

    result = client_for(v1).complete("x", stream=True)

    assert result.success and result.response_text == "".join(words)
    assert (result.completion_tokens, result.tokens_estimated, result.prompt_tokens) == (len(words), True, None)
    assert result.tpot is not None


# --- The finished result ---------------------------------------------------------------------------

def test_a_failed_request_gives_one_readable_line_naming_every_attempt(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(503, OVERLOADED))

    result = client_for(v1, retries=3, retry_delay=0).complete("x")

    assert result.error_message == "HTTP 503 (Service Unavailable): model overloaded — after 4 attempts"
    assert (result.success, result.attempts, len(result.attempt_log)) == (False, 4, 4)
    assert result.tokens_per_second is None and result.timestamp


def test_a_finished_result_has_its_speed_and_the_model_sent(fault_server: FaultServer, v1: str) -> None:
    fault_server.reply(Reply.json({**COMPLETION, "usage": {"prompt_tokens": 5, "completion_tokens": 12}}),
                       Reply.json(COMPLETION))

    result = client_for(v1, model="m").complete("x")
    one_token = client_for(v1, model="m").complete("x")

    assert result.completion_tokens is not None
    assert result.tokens_per_second == pytest.approx(result.completion_tokens / result.execution_time)
    assert one_token.completion_tokens == 1 and one_token.tokens_per_second is None  # below MIN_RATE_TOKENS
    assert (result.model, result.error, result.error_message) == ("m", None, None)
