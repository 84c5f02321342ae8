"""Each client option and ini key reaches the part that uses it, through a whole pytest session.

The client's own tests prove what a ``ClientConfig`` does; these prove the session builds it from the options:
each test fails if its option is ignored (or its default changes), which no unit test of the client can see.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import COMPLETION, OVERLOADED, FaultServer, Reply, self_signed_cert, server_context
from openai_stub import write_suite

MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}


def session(pytester: pytest.Pytester, url: str, *args: str, ini: str = "") -> dict[str, Any]:
    """Run one suite test against ``url`` and return its result file."""
    suite = write_suite(pytester.path / "s.json", [{"id": "one", "name": "one"}])
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", url, "--llmbench-model", "m",
                       "-p", "no:cacheprovider", *args)
    loaded: dict[str, Any] = json.loads((pytester.path / "llmbench_results" / "latest" / "one_result.json").read_text())
    return loaded


def posts(server: FaultServer) -> int:
    return sum(path.endswith("/completions") for path in server.paths())


@pytest.fixture
def failing(fault_server: FaultServer) -> FaultServer:
    """A server that lists its model and answers every request with 503."""
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply(503, OVERLOADED))
    return fault_server


@pytest.mark.parametrize(("args", "ini", "expected"), [
    ((), "", 4),  # the default: 3 retries
    (("--llmbench-retries", "1"), "", 2),
    ((), "llmbench_retries = 0", 1),
    (("--llmbench-retries", "2"), "llmbench_retries = 0", 3),  # the command line wins over the ini file
], ids=["default-3", "option", "ini", "option-over-ini"])
def test_retries_reach_the_client(pytester: pytest.Pytester, failing: Any, v1: str, args: Any, ini: Any, expected: Any) -> None:
    result = session(pytester, v1, "--llmbench-retry-delay", "0", *args, ini=ini)

    assert (posts(failing), result["attempts"]) == (expected, expected)


@pytest.mark.parametrize(("args", "ini"), [(("--llmbench-retry-delay", "0.2"), ""), ((), "llmbench_retry_delay = 0.2")],
                         ids=["option", "ini"])
def test_retry_delay_is_the_backoff_base(pytester: pytest.Pytester, failing: Any, v1: str, args: Any, ini: Any) -> None:
    result = session(pytester, v1, "--llmbench-retries", "1", *args, ini=ini)

    assert 0.15 <= result["attempt_log"][0]["delay_s"] <= 0.2  # the base, less up to a quarter of jitter


def test_max_retry_wait_refuses_a_longer_retry_after(pytester: pytest.Pytester, fault_server: FaultServer, v1: str) -> None:
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply(429, OVERLOADED, {"Retry-After": "3"}))

    result = session(pytester, v1, "--llmbench-max-retry-wait", "1")

    assert posts(fault_server) == 1
    assert "asked to wait 3 s before retrying, more than the 1 s allowed" in result["error_message"]


@pytest.mark.parametrize(("flag", "expected"), [((), 1), (("--llmbench-retry-read-timeouts",), 2)],
                         ids=["default-off", "option"])
def test_timeout_is_the_deadline_and_read_timeouts_retry_only_when_asked(pytester: pytest.Pytester, fault_server: FaultServer, v1: str, flag: Any, expected: Any) -> None:
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply.json(COMPLETION, delay=1.5))

    result = session(pytester, v1, "--llmbench-timeout", "0.3", "--llmbench-retries", "1",
                     "--llmbench-retry-delay", "0", *flag)

    assert result["error"]["kind"] == "deadline" and "within the 0.3 s deadline" in result["error_message"]
    assert posts(fault_server) == expected


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Any]:
    cert, key = self_signed_cert(tmp_path)
    with FaultServer(ssl_context=server_context(cert, key)) as server:
        server.always(Reply.json(MODELS), path="/v1/models")
        server.always(Reply.json(COMPLETION))
        server.cert = cert
        yield server


@pytest.mark.parametrize("how", ["option", "ini"])
def test_ca_bundle_verifies_the_servers_certificate(pytester: pytest.Pytester, tls_server: Any, how: Any) -> None:
    bundle = pytester.path / "ca.pem"
    bundle.write_bytes(tls_server.cert.read_bytes())
    args = ("--llmbench-ca-bundle", str(bundle)) if how == "option" else ()
    result = session(pytester, tls_server.url_for("/v1"), *args,
                     ini="llmbench_ca_bundle = ca.pem" if how == "ini" else "")

    assert result["success"] is True


def test_without_a_ca_bundle_a_self_signed_server_is_refused(pytester: pytest.Pytester, tls_server: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "one"}])
    run = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", tls_server.url_for("/v1"),
                             "-p", "no:cacheprovider")

    assert run.ret == pytest.ExitCode.USAGE_ERROR and tls_server.paths() == []


def test_insecure_skips_certificate_checks(pytester: pytest.Pytester, tls_server: Any) -> None:
    assert session(pytester, tls_server.url_for("/v1"), "--llmbench-insecure")["success"] is True


def test_openai_api_key_is_the_fallback_credential(pytester: pytest.Pytester, fault_server: FaultServer, v1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBENCH_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-fallback-71")
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply.json(COMPLETION))

    session(pytester, v1)

    assert [r.headers["authorization"] for r in fault_server.received] == ["Bearer sk-openai-fallback-71"] * 2
