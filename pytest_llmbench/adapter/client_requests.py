"""Requests a hand-written test makes through the ``llm_client`` fixture, recorded like a suite's.

The fixture hands out one ``RecordingClient`` per process; it notes each ``complete``/``chat`` result under the
test that is running, and the test's report carries them to the controller (session/handoff.py), so that they
land in the batch rows, statistics and per-test files, attributed to the test's node id. A test may make several
requests: each is a row of its own, all of that one pytest test.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ..http.client import LLMClient
from ..result import TestResult
from ..runner import add_failed_check, name_options_in
from ..session.endpoint import Endpoint
from ..session.handoff import Delivery
from ..session.storage import file_stem
from .internals import worker_id

CATEGORY = "llm_client"  # the category of these rows, and the folder of their files in the run folder


def row_id(item: pytest.Item) -> str:
    """The test's node id, as its rows name it. For a file outside the root folder that was named on the command
    line, pytest leaves the file part empty (``::test_chat``); there the file's absolute path stands in, as it does
    for suite files (collect/items.py): never empty, distinct for distinct files."""
    file_part, sep, rest = item.nodeid.partition("::")
    return item.nodeid if file_part or not sep else f"{item.path.resolve().as_posix()}::{rest}"


class RecordingClient:
    """The session's client for hand-written tests: ``complete`` and ``chat`` are recorded under the running
    test; everything else (``list_models``, ``model``, ``send``...) is the session client's own."""

    def __init__(self, client_of: Callable[[], LLMClient], config: pytest.Config,
                 endpoint_of: Callable[[], Endpoint | None] = lambda: None, slots: int | None = None) -> None:
        self._client_of = client_of  # the runner's client, built on first use (--setup-only stays offline)
        self._config = config
        self._endpoint_of = endpoint_of  # this process's endpoint, named in what a worker hands on
        # --llmbench-concurrency holds these requests too: this process's share of it (None: no limit)
        self._slots = threading.BoundedSemaphore(slots) if slots else None
        self.item: pytest.Item | None = None  # the test whose setup, call or teardown is running
        self._pending: list[Delivery] = []  # recorded for ``item`` and not yet on one of its reports
        self._sent = 0  # requests recorded for ``item``: the second one's files are ``<stem>-2``

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client_of(), name)

    def complete(self, prompt: str, **params: Any) -> TestResult:
        return self._recorded(lambda: self._client_of().complete(prompt, **params))

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> TestResult:
        return self._recorded(lambda: self._client_of().chat(messages, **params))

    def embed(self, inputs: str | list[str], **params: Any) -> TestResult:
        return self._recorded(lambda: self._client_of().embed(inputs, **params))

    def _recorded(self, request: Any) -> TestResult:
        with self._slots or contextlib.nullcontext():
            started = time.monotonic()  # after a slot was free: waiting for one is not the request's time
            result: TestResult = request()
            window = (started, time.monotonic())
        name_options_in(result)
        item = self.item
        if item is None:  # outside any test (a session fixture's teardown, say): nothing to attribute it to
            return result
        result.test_id = result.test_name = row_id(item)
        result.category = CATEGORY
        try:
            self._config.hook.pytest_llmbench_result(result=result, item=item, config=self._config)
        except Exception as exc:  # noqa: BLE001 - a conftest bug is a failed check of the result, never a lost one
            add_failed_check(result, "pytest_llmbench_result", f"raised {type(exc).__name__}: {exc}")
        stem = file_stem(result.test_id, result.test_id)
        self._sent += 1
        worker = worker_id(self._config)
        self._pending.append(Delivery(result, stem if self._sent == 1 else f"{stem}-{self._sent}", CATEGORY, window,
                                      worker=worker, in_test=True, endpoint=self._described(worker)))
        return result

    def _described(self, worker: str | None) -> dict[str, Any] | None:
        """A worker's own endpoint, for the controller (which found none itself); None in the controller's process."""
        endpoint = self._endpoint_of() if worker is not None else None
        if endpoint is None:
            return None
        log = getattr(endpoint.server, "log_path", None)
        return {**endpoint.to_workerinput(), "log": str(log) if log is not None else None}

    def start(self, item: pytest.Item | None) -> None:
        """Record under ``item`` from now on (None: under no test)."""
        self.item, self._pending, self._sent = item, [], 0

    def take(self) -> list[Delivery]:
        """The requests recorded since the last take, handed over once (a later phase gets only newer ones)."""
        taken, self._pending = self._pending, []
        return taken

