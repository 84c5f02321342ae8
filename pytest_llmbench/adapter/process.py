"""What each pytest process (the controller, or an xdist worker) sets up for llmbench: its settings and suites, its
endpoint, its runner and monitor, and the one way a usage error stops the session.

plugin.py registers this module as a plugin: its ``pytest_*`` functions hand each suite test's result on with its
report, let go of reports once recorded, choose the xdist scheduler and close the process's runner and server."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Generator
from typing import Any, NoReturn

import pytest

from ..collect.generated import replays_any
from ..collect.rootdir import borrowed_rootdir
from ..collect.suite import SUITE_SUFFIX, TestCase
from ..exceptions import ConfigurationError, LLMBenchError
from ..metrics.gates import Gates
from ..metrics.hardware.monitor import PerformanceMonitor
from ..options import Settings, name_options, read_settings
from ..result import TestResult
from ..runner import Runner, build_runner
from ..session.endpoint import EndpointLifecycle, output_folder
from ..session.handoff import Inbox, attach, release
from ..session.load.plan import LoadPlan
from ..session.run_folder import resolve_baseline
from ..session.tracing import check as check_otlp
from .capacity import configure_search, search_in_flight
from .driver import DRIVER_KEY, LoadDriver
from .internals import is_xdist_worker, worker_input
from .items import (
    LOAD_PLAN_KEY,
    MARKER,
    RUNNER_KEY,
    SENT_AHEAD_KEY,
    SETTINGS_KEY,
    SUITES_KEY,
    LLMBenchItem,
    add_suites_to_args,
)
from .pytest_html import add_html_extras, html_report_wanted
from .resume import mark_resumed, replays_for_worker
from .scheduling import make_scheduler

CONTROLLER = "llmbench-controller"  # the controller's name in the plugin manager
ENDPOINT_KEY = pytest.StashKey[EndpointLifecycle]()
_RUNNER = pytest.StashKey[Runner]()


def stop_for_usage(exc: LLMBenchError) -> NoReturn:
    """Stop the session over a usage error found once it runs (an unwritable output folder, an unreachable or
    unstartable server): one ``llmbench:`` line and pytest's usage-error exit code, no traceback."""
    pytest.exit(f"llmbench: {name_options(str(exc))}", returncode=pytest.ExitCode.USAGE_ERROR)


def configure(config: pytest.Config) -> Gates:
    """Read the options into the stash, add the suites to pytest's arguments, make this process's endpoint
    lifecycle; the gates are for the controller. A bad option is pytest's usage error, named by its flag."""
    config.addinivalue_line("markers", f"{MARKER}: a test from an llmbench JSON suite")
    try:
        settings = read_settings(config.getoption, config.getini,
                                 ini_dir=config.inipath.parent if config.inipath else None)
        settings.headers()
        check_otlp(settings.otlp)
        baseline, no_baseline = resolve_baseline(settings.compare, output_folder(
            settings, config.invocation_params.dir)) if settings.compare else (None, None)
        gates = Gates.parse(settings.slo, settings.compare_fail, baseline, no_baseline, settings.few_samples,
                            settings.drift_fail, settings.slo_undecided, settings.compare_min_change)
        plan = LoadPlan.from_settings(settings)
        configure_search(config, settings, gates.slos)
    except (ConfigurationError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    base = config.invocation_params.dir
    suites = config.stash[SUITES_KEY] = tuple((p if p.is_absolute() else base / p).resolve() for p in settings.suite)
    add_suites_to_args(config, suites)
    borrowed = borrowed_rootdir(config.rootpath, base, suites, config.invocation_params.args)
    if borrowed is not None and not is_xdist_worker(config):
        config_warning(config, pytest.PytestConfigWarning(borrowed))
    named = [*suites, *(base / arg for arg in config.args if arg.endswith(SUITE_SUFFIX))]
    if not plan.dispatched and replays_any(named, settings.max_suite_bytes):
        plan = plan.replaying()  # a trace sends at its own times: a load run whatever the options
    config.stash[LOAD_PLAN_KEY] = plan
    config.stash[RUNNER_KEY] = lambda: process_runner(config)
    if plan.dispatched:  # this process sends ahead (session/load/)
        driver = config.stash[DRIVER_KEY] = LoadDriver(config, plan, config.stash[RUNNER_KEY])
        config.stash[SENT_AHEAD_KEY] = driver.sent_ahead
        config.pluginmanager.register(driver, "llmbench-load")
    config.stash[ENDPOINT_KEY] = EndpointLifecycle(settings, output_folder(settings, base),
                                                   worker_input(config))
    replays_for_worker(config)
    if settings.insecure:
        config_warning(config, pytest.PytestWarning("llmbench: --llmbench-insecure is set: TLS certificates are "
                                                    "not verified"))
    return gates


def config_warning(config: pytest.Config, warning: Warning) -> None:
    """A warning while pytest configures; one that a filter (``-W error``) makes an error is a usage error."""
    try:
        config.issue_config_time_warning(warning, stacklevel=3)
    except Warning:
        raise pytest.UsageError(f"{warning} (a warnings filter turned this warning into an error)") from None


def process_runner(config: pytest.Config) -> Runner:
    """This process's runner, built on first use so that --setup-only/--setup-plan stay offline."""
    if _RUNNER not in config.stash:
        controller = config.pluginmanager.get_plugin(CONTROLLER)
        if controller is not None and config.stash[ENDPOINT_KEY].endpoint is None:
            # hand-written tests alone: the run says what it tests, its server logs in its folder
            controller.setup.prepare()
        try:
            endpoint = config.stash[ENDPOINT_KEY].for_requests()
        except LLMBenchError as exc:
            stop_for_usage(exc)

        def build_request(case: TestCase, body: dict[str, Any]) -> None:
            config.hook.pytest_llmbench_build_request(test_case=case, request=body, config=config)

        def extra_checks(case: TestCase, result: TestResult) -> list[Any]:
            answers: list[Any] = config.hook.pytest_llmbench_evaluate(test_case=case, result=result, config=config)
            return answers

        driver = config.stash.get(DRIVER_KEY, None)
        config.stash[_RUNNER] = build_runner(config.stash[SETTINGS_KEY], endpoint.url, endpoint.model,
                                             build_request=build_request, extra_checks=extra_checks,
                                             in_flight=max(driver.in_flight if driver is not None else 1,
                                                           search_in_flight(config)))
    return config.stash[_RUNNER]


def hand_on(item: LLMBenchItem, report: pytest.TestReport) -> None:
    """Send the item's result to the controller: on the report from a worker, through the inbox in its process."""
    if item.result is None:
        return
    if html_report_wanted(item.config):
        add_html_extras(report, item.result, item.config.stash[SETTINGS_KEY].secrets())
    answered = [*item.earlier, (item.result, item.window)]  # a conversation's turns, in order
    attach(report, [item.delivery(result, window) for result, window in answered], inbox=inbox_of(item.config))
    item.result, item.earlier = None, []  # handed on; items live until the session ends


def inbox_of(config: pytest.Config) -> Inbox | None:
    """The controller's inbox when it shares this process; None in an xdist worker (results go on the report)."""
    controller = config.pluginmanager.get_plugin(CONTROLLER)
    return controller.inbox if controller is not None else None


class InterruptSignals:
    """Ctrl-C and SIGTERM stop the session once (partial batch, status 2), after ``on_signal`` notes why.

    A second signal while the session writes its files, or as the process exits, is only reported: raised there, it
    would cost the run its batch and end in pytest's traceback (exit 130). A third stops at once. Off the main
    thread no handler can be set (pytest run inside another program), and nothing changes."""

    def __init__(self, on_signal: Callable[[str], None]) -> None:
        self.on_signal = on_signal
        self.received: list[int] = []
        self.previous: dict[int, Any] = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._on_interrupt)
        except ValueError:
            pass

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if len(self.received) == 2:
            sys.stderr.write("\nllmbench: stopping; the results so far are being written (a third Ctrl-C abandons "
                             "them)\n")
            return
        if len(self.received) == 1:
            self.on_signal("terminated by SIGTERM" if signum == signal.SIGTERM else "interrupted (KeyboardInterrupt)")
        raise KeyboardInterrupt("SIGTERM" if signum == signal.SIGTERM else "")

    def restore(self) -> None:
        """The handlers from before. After an interrupt the process is on its way out with status 2: further signals
        are ignored (Python keeps an ignored signal ignored while it shuts down, but resets a handler of its own)."""
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_IGN if self.received else handler)


def make_monitor(config: pytest.Config, settings: Settings) -> PerformanceMonitor:
    """A monitor with the session's thresholds and the pytest_llmbench_collect_metrics hook attached."""
    monitor = PerformanceMonitor(settings.monitor_interval, gpu_temp_c=settings.alert_gpu_temp,
                                 memory_pct=settings.alert_memory)
    monitor.extra_collectors.append(
        lambda sample: config.hook.pytest_llmbench_collect_metrics(sample=sample, config=config))
    return monitor


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return make_scheduler(config, config.stash[LOAD_PLAN_KEY])  # None unless a load run under --dist load


@pytest.hookimpl(tryfirst=True)  # before the controller counts the items it will record
def pytest_collection_finish(session: pytest.Session) -> None:
    mark_resumed(session.config, session.items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "call" and isinstance(item, LLMBenchItem):
        hand_on(item, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> Generator[None, Any, Any]:
    try:
        return (yield)
    finally:  # after every listener (the controller records trylast): pytest keeps every report, drop the text
        release(report)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close this process's runner and stop the server it started, if any."""
    runner = config.stash.get(_RUNNER, None)
    if runner is not None:
        runner.close()
    lifecycle = config.stash.get(ENDPOINT_KEY, None)
    if lifecycle is not None:
        lifecycle.stop()
