"""The client never shows a credential (pytest_llmbench.http.client with redact): keys a model or a server repeats,
header values, URL userinfo; against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from faultserver import CHAT, FaultServer, Reply, client_for, refusing_url

from pytest_llmbench.exceptions import ClientError, EndpointUnreachable
from pytest_llmbench.http.client import ClientConfig, LLMClient

KEY = "sk-llmbench-unique-7f3a9c51e2"


def test_a_key_the_model_repeats_is_masked_in_the_text_and_the_api_response(fault_server: FaultServer, v1: str) -> None:
    answer = {**CHAT, "choices": [{"index": 0, "message": {"role": "assistant", "content": f"Your key is {KEY}."},
                                   "finish_reason": "stop"}]}
    fault_server.always(Reply.json(answer))

    result = client_for(v1, api_key=KEY).chat([{"role": "user", "content": f"Repeat {KEY}"}])

    assert result.success and result.response_text == "Your key is ***."
    assert result.api_response["choices"][0]["message"]["content"] == "Your key is ***."
    assert KEY not in json.dumps(result.api_response)


def test_a_key_in_an_authorization_header_is_masked_when_echoed_alone(fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    client = client_for(v1, headers={"Authorization": f"Bearer {KEY}"})

    result = client.complete("x")

    assert fault_server.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert result.error is not None
    assert result.error.kind == "auth" and KEY not in result.to_json()
    assert result.error_message is not None
    assert "Incorrect API key provided: ***" in result.error_message


def test_a_mid_stream_error_quoting_the_key_is_masked(fault_server: FaultServer, v1: str) -> None:
    chunk = {"choices": [{"index": 0, "text": "Hi", "finish_reason": None}]}
    fault_server.always(Reply.sse([chunk, {"error": {"message": f"key {KEY} revoked mid-stream"}}], done=False))

    result = client_for(v1, api_key=KEY).complete("x", stream=True)

    assert result.error is not None
    assert result.error_message is not None
    assert result.error.kind == "stream" and "key *** revoked" in result.error_message
    assert KEY not in result.to_json()


def test_the_key_never_appears_in_results_messages_or_exceptions(fault_server: FaultServer, v1: str) -> None:
    other = "hdr-secret-0b8e44"
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                      "param": KEY}}
    fault_server.always(Reply(401, echo, {"X-Echo": f"Bearer {KEY}"}))
    config = ClientConfig(v1, api_key=KEY, headers={"x-api-key": other}, retry_delay=0.01)
    client = LLMClient(config, model="m")

    result = client.complete("x")
    with pytest.raises(EndpointUnreachable) as caught:
        client.check_reachable()
    with pytest.raises(ClientError) as listing:
        client.list_models()

    texts = [result.to_json(), repr(result), str(caught.value), repr(caught.value.error), str(listing.value),
             repr(config)]
    assert fault_server.received[0].headers["x-api-key"] == other  # it was sent...
    for text in texts:  # ...and never shown
        assert KEY not in text and other not in text
    assert result.error_message is not None
    assert "authentication failed" in result.error_message


def test_url_credentials_never_appear() -> None:
    with refusing_url() as url:
        endpoint = url.replace("http://", "http://alice:pw-31337@") + "/v1"
        client = client_for(endpoint, retries=0)
        result = client.complete("x")
        with pytest.raises(EndpointUnreachable) as caught:
            client.check_reachable()

    assert "pw-31337" not in result.to_json() and "pw-31337" not in str(caught.value)
