"""Key and URL mistakes as a user makes them: each error says what is wrong and what to try."""

from __future__ import annotations

import pytest
from faultserver import CHAT, COMPLETION, FaultServer, Reply
from openai_stub import write_suite

MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}
REFUSED = {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}


def session(pytester: pytest.Pytester, endpoint: str, *args: str, tests: int = 3) -> pytest.RunResult:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(tests)])
    return pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", endpoint, "--llmbench-retries",
                              "0", "-p", "no:cacheprovider", *args)


def test_an_endpoint_without_a_scheme_gets_the_url_to_try(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    bare = fault_server.url_for("/v1").removeprefix("http://")
    result = session(pytester, bare)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*has no http:// or https:// in front: try --llmbench-endpoint http://{bare}*"])
    assert fault_server.received == []


def test_an_endpoint_without_v1_gets_the_url_to_try(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(Reply(404, {"detail": "Not Found"}))
    result = session(pytester, fault_server.url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*GET {fault_server.url}/models answered HTTP 404*try --llmbench-endpoint "
                                 f"{fault_server.url}/v1*"])


def test_a_404_on_a_request_names_the_url_and_the_other_api(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply(404, {"error": {"message": "Not Found"}}), path="/v1/completions")
    result = session(pytester, fault_server.url_for("/v1"), tests=1)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*POST {fault_server.url}/v1/completions; *other API, "
                                 f"{fault_server.url}/v1/chat/completions*"])


def test_no_key_sent_is_told_apart_and_the_session_stops_at_the_first_refusal(pytester: pytest.Pytester, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBENCH_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fault_server.always(Reply.json(MODELS), path="/v1/models")  # open, while completions need a key
    fault_server.always(Reply(401, REFUSED), path="/v1/completions")
    result = session(pytester, fault_server.url_for("/v1"))
    result.stdout.fnmatch_lines(["*no API key was sent and the server wants one: set LLMBENCH_API_KEY or "
                                 "OPENAI_API_KEY*"])
    assert fault_server.paths().count("/v1/completions") == 1  # one refusal, not one per test
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*stopping*"])


def test_a_refused_key_is_named_as_such(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(Reply(403, REFUSED), path="/v1/models")
    result = session(pytester, fault_server.url_for("/v1"), "--llmbench-api-key", "sk-wrong-1234567890")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*the API key sent was refused: check LLMBENCH_API_KEY or OPENAI_API_KEY*"])
    assert "sk-wrong-1234567890" not in result.stdout.str()


def test_chat_and_completion_answers_still_pass(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply.json(COMPLETION), path="/v1/completions")
    fault_server.always(Reply.json(CHAT), path="/v1/chat/completions")
    session(pytester, fault_server.url_for("/v1"), tests=2).assert_outcomes(passed=2)
