"""Fixtures shared by the test files. Keep each one small and documented here; helpers go in modules.

- ``fault_server``: a started ``faultserver.FaultServer`` on 127.0.0.1 (plain HTTP), stopped after the
  test. Script it with ``fault_server.reply(Reply(...))`` / ``.always(...)`` and read
  ``fault_server.received``. See tests/faultserver.py for the TLS and refused-connection helpers.
- ``v1``: that server's ``/v1`` base URL, the endpoint a client is given.
- ``load_stub``: an ``openai_stub.OpenAIStub`` (answers after 0.25 s) on a threaded server on 127.0.0.1, which
  answers many requests at once and counts them (``peak``, ``active``); its ``url`` is the ``/v1`` base.
- ``metrics_stub``: an ``openai_stub.OpenAIStub`` (answers "one two three four five six" after 0.25 s) on a threaded
  server whose own ``/metrics`` is a real exporter (tests/prometheus_exporter.py) that its answers move, in vLLM's
  format or, parametrized indirectly, another's (``"sglang"``, ``"tgi"``, ``"llamacpp"``); ``metrics_stub.exporter``
  is the exporter, ``metrics_stub.authorizations`` the Authorization header of each scrape.
- ``stub``: an ``openai_stub.OpenAIStub`` on pytest-httpserver, its URL in ``stub.url``. A test module scripts it
  with a module-level ``STUB = {...}`` of OpenAIStub's arguments (answers, status, delay, ...); a test may change
  its fields (``stub.delay = 0.1``) before the session starts.
- ``local_extra``: skips a test when the ``local`` extra is missing (fails it under CI); see tests/local_extra.py.
- ``batches_match_the_schema`` (autouse): after each test, every batch file written in the temporary folders the
  test made is validated against the shipped JSON Schema (tests/batch_schema.py); a mismatch errors the test.

This file is loaded by every pytest run in the checkout — README command 1 too, which installs only the ``local``
extra and runs an example suite. So it imports nothing at module level that the ``test`` extra brings (werkzeug,
pytest-httpserver, ...): the fixtures import their servers when they run, and the per-test time limit is set here
only when pytest-timeout is installed (an ini key ``timeout`` would be an "Unknown config option" without it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from faultserver import FaultServer
    from openai_stub import OpenAIStub

pytest_plugins = ("browser",)  # the browser tests' Chromium and open_report fixtures (playwright loads when used)

TEST_TIMEOUT_S = 120.0
"""pytest-timeout's limit per test: a broken retry cap or deadline fails in minutes, not by hanging CI."""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give pytest-timeout its default before it reads it; ``--timeout`` and ``PYTEST_TIMEOUT`` still win."""
    if config.pluginmanager.hasplugin("timeout") and getattr(config.option, "timeout", None) is None:
        import os

        if "PYTEST_TIMEOUT" not in os.environ:
            config.option.timeout = TEST_TIMEOUT_S


@pytest.fixture(autouse=True)
def batches_match_the_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    from batch_schema import check_batches  # jsonschema: the test extra

    for folder in sorted(set(base.iterdir()) - before):
        check_batches(folder)


@pytest.fixture
def local_extra() -> None:
    """Skip a test that needs the ``local`` extra when it is missing; under CI fail it (tests/local_extra.py)."""
    from local_extra import require_local_extra

    require_local_extra()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    from faultserver import FaultServer

    with FaultServer() as server:
        yield server


@pytest.fixture
def v1(fault_server: FaultServer) -> str:
    return fault_server.url_for("/v1")


@pytest.fixture
def load_stub() -> Iterator[OpenAIStub]:
    from openai_stub import OpenAIStub
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    answering = OpenAIStub(delay=0.25)
    answering.url = answering.install(server)
    yield answering
    server.clear()
    server.stop()


@pytest.fixture
def metrics_stub(request: pytest.FixtureRequest) -> Iterator[OpenAIStub]:
    from openai_stub import OpenAIStub
    from prometheus_exporter import PrometheusExporter, serve_beside
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)  # vLLM answers /metrics while requests run
    server.start()
    answering = OpenAIStub(default_answer="one two three four five six", delay=0.25)
    with PrometheusExporter(getattr(request, "param", "vllm")) as exporter:
        answering.exporter = exporter
        answering.authorizations = serve_beside(exporter, answering, server)
        yield answering
    server.clear()
    server.stop()


@pytest.fixture
def stub(request: pytest.FixtureRequest, httpserver: Any) -> OpenAIStub:
    from openai_stub import OpenAIStub

    server = OpenAIStub(**getattr(request.module, "STUB", {}))
    server.url = server.install(httpserver)
    return server
