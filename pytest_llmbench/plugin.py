"""pytest hooks and fixtures, wired to the logic modules; nothing here decides more than where things go."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .collect.items import (
    RUNNER_KEY,
    SETTINGS_KEY,
    LLMBenchItem,
    SuiteFile,
    add_suites_to_args,
    assign_file_stems,
    deselect_categories,
    is_suite_path,
    missing_suite_items,
)
from .exceptions import ConfigurationError, EndpointError
from .http.client import LLMClient
from .metrics.gates import Gates
from .metrics.hardware.monitor import PerformanceMonitor
from .options import add_options, read_settings
from .runner import Runner, build_runner
from .session.controller import WORKERINPUT_KEY, Controller, make_monitor
from .session.endpoint import Endpoint, output_folder, prepare
from .session.handoff import Delivery, attach, release
from .session.report_html.pytest_html import PytestHtmlColumns, add_html_extras, html_report_wanted

SUITES_KEY = pytest.StashKey[tuple[Path, ...]]()
OWN_ENDPOINT_KEY = pytest.StashKey[Endpoint]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmbench: a test from an llmbench JSON suite")
    try:
        settings = read_settings(config.getoption, config.getini,
                                 ini_dir=config.inipath.parent if config.inipath else None)
        settings.headers()
        gates = Gates.from_settings(settings)
    except (ConfigurationError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    base = config.invocation_params.dir
    suites = tuple((p if p.is_absolute() else base / p).resolve() for p in settings.suite)
    config.stash[SUITES_KEY] = suites
    add_suites_to_args(config, suites)
    if settings.insecure:
        config.issue_config_time_warning(pytest.PytestWarning(
            "llmbench: --llmbench-insecure is set: TLS certificates are not verified"), stacklevel=2)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Controller(config, settings, gates), "llmbench-controller")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(PytestHtmlColumns(), "llmbench-pytest-html")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
    if is_suite_path(file_path, parent.config.stash[SUITES_KEY]):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.extend(missing_suite_items(session, config.stash[SUITES_KEY]))
    assign_file_stems(items)
    deselect_categories(config, items, config.stash[SETTINGS_KEY].category)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    if isinstance(item, LLMBenchItem):
        _runner(item.config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if call.when == "call" and isinstance(item, LLMBenchItem) and item.result is not None:
        if html_report_wanted(item.config):
            add_html_extras(report, item.result, item.config.stash[SETTINGS_KEY].secrets())
        controller = item.config.pluginmanager.get_plugin("llmbench-controller")  # None in an xdist worker
        delivery = Delivery(item.result, item.file_stem or item.case.id, item.output_subdir, item.window)
        attach(report, delivery, inbox=controller.inbox if controller is not None else None)
        item.result = None  # handed on; items live until the session ends
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Once recorded (controller) or sent (xdist worker), drop the result's text: pytest keeps every report."""
    release(report)


def _endpoint(config: pytest.Config) -> Endpoint:
    """The controller's endpoint, handed to workers; prepared here only when no controller did."""
    given = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if given:
        return Endpoint(url=given["url"], model=given["model"])
    controller = config.pluginmanager.get_plugin("llmbench-controller")
    if controller is not None and controller.endpoint is not None:
        endpoint: Endpoint = controller.endpoint
        return endpoint
    if OWN_ENDPOINT_KEY not in config.stash:
        settings = config.stash[SETTINGS_KEY]
        output = output_folder(settings, config.invocation_params.dir)
        worker = getattr(config, "workerinput", {}).get("workerid")
        try:  # a worker's own embedded server logs into a folder of its own, so the workers' logs stay apart
            config.stash[OWN_ENDPOINT_KEY] = prepare(settings, output / worker if worker else output)
        except EndpointError as exc:
            pytest.exit(f"llmbench: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    return config.stash[OWN_ENDPOINT_KEY]


def _runner(config: pytest.Config) -> Runner:
    """The process's runner, built on first use so that --setup-only/--setup-plan stay offline."""
    if RUNNER_KEY not in config.stash:
        config.stash[RUNNER_KEY] = _build_runner(config)
    return config.stash[RUNNER_KEY]


def _build_runner(config: pytest.Config) -> Runner:
    endpoint = _endpoint(config)

    def build_request(case: Any, body: dict[str, Any]) -> None:
        config.hook.pytest_llmbench_build_request(test_case=case, request=body)

    def extra_checks(case: Any, result: Any) -> list[Any]:
        answers: list[Any] = config.hook.pytest_llmbench_evaluate(test_case=case, result=result)
        return answers

    return build_runner(config.stash[SETTINGS_KEY], endpoint.url, endpoint.model,
                        build_request=build_request, extra_checks=extra_checks)


@pytest.fixture(scope="session")
def llm_client(pytestconfig: pytest.Config) -> LLMClient:
    """The session's configured client, for hand-written tests: ``llm_client.complete(...)``, ``.chat(...)``."""
    return _runner(pytestconfig).client


@pytest.fixture(scope="session")
def performance_monitor(pytestconfig: pytest.Config) -> Iterator[PerformanceMonitor]:
    """The session's hardware monitor (``with performance_monitor.measure() as window: ...``).

    With ``--llmbench-monitor`` it is the controller's sampler; otherwise one is started for the fixture's users.
    """
    controller = pytestconfig.pluginmanager.get_plugin("llmbench-controller")
    if controller is not None and controller.recorder.monitor is not None:
        yield controller.recorder.monitor
        return
    monitor = make_monitor(pytestconfig, pytestconfig.stash[SETTINGS_KEY])
    monitor.start()
    yield monitor
    monitor.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    runner = config.stash.get(RUNNER_KEY, None)
    if runner is not None:
        runner.close()
    own = config.stash.get(OWN_ENDPOINT_KEY, None)
    if own is not None:
        own.stop()
