"""The fixtures for hand-written tests, ``llm_client`` and ``performance_monitor``, and the hooks that file the
client's requests under the test that made them.

plugin.py registers this module as a plugin, so its fixtures and ``pytest_*`` functions are pytest's."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from ..metrics.hardware.monitor import PerformanceMonitor
from ..session.handoff import attach
from ..session.load.plan import in_flight_cap
from .client_requests import RecordingClient
from .driver import worker_position
from .items import LOAD_PLAN_KEY, SETTINGS_KEY, LLMBenchItem
from .process import CONTROLLER, ENDPOINT_KEY, inbox_of, make_monitor, process_runner

_CLIENT = pytest.StashKey[RecordingClient]()


@pytest.fixture(scope="session")
def llm_client(pytestconfig: pytest.Config) -> RecordingClient:
    """The session's configured client, for hand-written tests: ``llm_client.complete(...)``, ``.chat(...)``;
    each of these requests is recorded like a suite's, under the calling test's node id."""
    process_runner(pytestconfig)  # an unreachable endpoint stops the session here, as for suites
    return recording_client(pytestconfig)


@pytest.fixture(scope="session")
def performance_monitor(pytestconfig: pytest.Config) -> Iterator[PerformanceMonitor]:
    """The session's hardware monitor (``with performance_monitor.measure() as window: ...``): the controller's
    sampler under ``--llmbench-monitor``, otherwise one started for the fixture's users."""
    controller = pytestconfig.pluginmanager.get_plugin(CONTROLLER)
    if controller is not None and controller.recorder.monitor is not None:
        yield controller.recorder.monitor
        return
    monitor = make_monitor(pytestconfig, pytestconfig.stash[SETTINGS_KEY])
    monitor.start()
    yield monitor
    monitor.stop()


def recording_client(config: pytest.Config) -> RecordingClient:
    """The ``llm_client`` fixture's value: the runner's client, its requests recorded under the running test."""
    if _CLIENT not in config.stash:
        index, count, _worker = worker_position(config)
        lifecycle = config.stash[ENDPOINT_KEY]
        config.stash[_CLIENT] = RecordingClient(lambda: process_runner(config).client, config,
                                                endpoint_of=lambda: lifecycle.endpoint,
                                                slots=in_flight_cap(config.stash[LOAD_PLAN_KEY], index, count))
    return config.stash[_CLIENT]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, Any]:
    client = recording_client(item.config)
    client.start(item)  # llm_client's requests are this test's from here on
    try:
        return (yield)
    finally:
        client.start(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A hand-written test's requests go to the controller with the report of the phase that ends them: the
    call's, setup's when no call follows, teardown's for any made after the call."""
    report = yield
    client = item.config.stash.get(_CLIENT, None)
    if (not isinstance(item, LLMBenchItem) and client is not None and client.item is item
            and (call.when != "setup" or not report.passed)):
        attach(report, client.take(), inbox=inbox_of(item.config))
    return report
