"""pytest's hooks and fixtures, wired to the parts that do the work (session/process.py sets a process up)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .collect import items as collect
from .metrics.hardware.monitor import PerformanceMonitor
from .options import add_options
from .session import process
from .session.client_requests import RecordingClient
from .session.controller import Controller
from .session.handoff import release
from .session.load.scheduling import make_scheduler
from .session.report_html.pytest_html import PytestHtmlColumns


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{collect.MARKER}: a test from an llmbench JSON suite")
    gates = process.configure(config)
    if not hasattr(config, "workerinput"):  # the controller: the only process without xdist
        controller = Controller(config, config.stash[collect.SETTINGS_KEY], gates, config.stash[process.ENDPOINT_KEY])
        config.pluginmanager.register(controller, process.CONTROLLER)
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(PytestHtmlColumns(), "llmbench-pytest-html")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return make_scheduler(config, config.stash[collect.LOAD_PLAN_KEY])  # None unless a load run under --dist load


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> collect.SuiteFile | None:
    if collect.is_suite_path(file_path, parent.config.stash[process.SUITES_KEY]):
        return collect.SuiteFile.for_path(parent, file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    collect.complete_items(session, items, config.stash[process.SUITES_KEY], config.stash[collect.SETTINGS_KEY])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, Any]:
    process.running(item, item.config)  # llm_client's requests are this test's from here on
    try:
        return (yield)
    finally:
        process.running(None, item.config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "call" and isinstance(item, collect.LLMBenchItem):
        process.hand_on(item, report)
    elif not isinstance(item, collect.LLMBenchItem):
        process.hand_on_requests(item, call, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> Generator[None, Any, Any]:
    try:
        return (yield)
    finally:  # after every listener (the controller records trylast): pytest keeps every report, drop the text
        release(report)


@pytest.fixture(scope="session")
def llm_client(pytestconfig: pytest.Config) -> RecordingClient:
    """The session's configured client, for hand-written tests: ``llm_client.complete(...)``, ``.chat(...)``;
    each of these requests is recorded like a suite's, under the calling test's node id."""
    process.process_runner(pytestconfig)  # an unreachable endpoint stops the session here, as for suites
    return process.recording_client(pytestconfig)


@pytest.fixture(scope="session")
def performance_monitor(pytestconfig: pytest.Config) -> Iterator[PerformanceMonitor]:
    """The session's hardware monitor (``with performance_monitor.measure() as window: ...``)."""
    yield from process.session_monitor(pytestconfig)


def pytest_unconfigure(config: pytest.Config) -> None:
    process.close(config)
