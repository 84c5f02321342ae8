"""The controller's side of a session: endpoint set-up, result intake, batch file and summary.

Registered only in the process that owns the session (the only one without xdist, the controller with it),
so files and the terminal have exactly one writer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ..batch import Batch
from ..exceptions import EndpointError, OutputNotWritable
from ..http.redact import Secrets
from ..metrics.gates import GateResult, Gates
from ..metrics.hardware.monitor import ErrorRateAlert
from ..metrics.server.section import slo_view
from ..options import Settings, endpoint_source
from ..session.endpoint import WORKERINPUT_KEY, Endpoint, EndpointLifecycle, WorkersEndpoints
from ..session.handoff import Delivery, Inbox, deliveries_of, is_llmbench_nodeid
from ..session.load.record import LoadRecord
from ..session.recorder import Recorder
from ..session.run_folder import make_run_folder, point_latest
from ..session.server_scrape import ServerScraper, start_scraper
from ..session.storage import check_writable, clean_temp_files
from ..session.target import Target, describe_target
from ..session.tracing import SpanExport, dropped_spans, session_attributes
from .driver import DRIVER_KEY, DURATION_SKIP, WORKEROUTPUT_KEY
from .finish import emit_warnings, fail_session, lost_reason, run_metadata, write_end_summary, write_html_report
from .gate_reports import is_gate_nodeid, log_gate_failures
from .internals import (
    count_on_last_line,
    is_xdist_controller,
    node_input,
    node_output,
    stop_xdist,
    terminal_line,
)
from .items import LOAD_PLAN_KEY, SUITES_KEY, LLMBenchItem, suites_requested
from .process import InterruptSignals, make_monitor, stop_for_usage
from .resume import WORKERINPUT_KEY as RESUME_INPUT_KEY
from .resume import Resume, baseline_answers, open_journal
from .terminal import ProgressLine, is_live_terminal, safe


class Controller:
    def __init__(self, config: pytest.Config, settings: Settings, gates: Gates, lifecycle: EndpointLifecycle) -> None:
        self.config = config
        self.settings = settings
        self.gates = gates
        self.lifecycle = lifecycle
        self.output = lifecycle.output
        # This run's own folder, <output>/<run id>/, made before the first thing is written there: every file of
        # the run goes in it (per-test files, batch file, report, server metrics, the embedded server's log).
        self.run_dir: Path | None = None
        self.target: Target | None = None  # what the run tests: the header line
        self.workers_endpoints = WorkersEndpoints(self.output, self._adopt_target)  # what workers found themselves
        self.suite_files: set[str] = set()
        self._header_shown = False
        self._load_taken = False
        self._session: pytest.Session | None = None
        self._auth_stopped = False
        self.load = LoadRecord(config.stash[LOAD_PLAN_KEY], slos=gates.slos, bucket_s=settings.timeline_bucket,
                               few_samples=gates.few_samples)
        if self.load.plan.sweep_kind:  # a sweep's levels are meant to cross the SLOs: they name its knee instead
            self.gates = dataclasses.replace(gates, slos=[])
        self.recorder = Recorder(self.output, error_alert=ErrorRateAlert(threshold=settings.alert_error_rate),
                                 secrets=Secrets(settings.secrets()), load=self.load, test_files=settings.test_files)
        if settings.otlp:
            self.recorder.spans = SpanExport(settings.otlp)
        self.warnings: list[str] = []
        self.started = datetime.now(timezone.utc)
        self._started_monotonic = time.monotonic()
        self.partial_reason: str | None = None
        self.batch_path: Path | None = None
        self.report_path: Path | None = None
        self.line: ProgressLine | None = None
        self.gate_result: GateResult | None = None
        self.batch: Batch | None = None
        self.batch_problem: str | None = None  # why the batch file could not be written
        self.warnings_as_errors: list[str] = []  # warnings a -W error filter turned into errors
        self._progress_hook = config.hook.pytest_llmbench_progress
        self.inbox: Inbox = {}  # results of tests run in this process, by node id (see handoff.py)
        self.server: ServerScraper | None = None
        self._server_checked = False
        self._resumed_taken = False
        self._waiting: deque[tuple[Delivery, bool]] = deque()  # results waiting for a server reading
        self._signals: InterruptSignals | None = None
        self.resume = Resume.open(config, settings, self.output, config.stash[SUITES_KEY]) if settings.resume \
            else None
        self.recorder.drift, self.recorder.drift_fail = baseline_answers(gates, self.warnings), settings.drift_fail
        if self.resume is not None:  # forced: the run's record says under what it went on
            self.warnings += [f"resumed under other options (--llmbench-resume-force): {line}"
                              for line in self.resume.differences]

    # -- set-up ---------------------------------------------------------------------------------

    @property
    def distributed(self) -> bool:
        return is_xdist_controller(self.config)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = datetime.now(timezone.utc)  # the clock pytest's own "in 5.09s" runs on starts here too
        self._started_monotonic = time.monotonic()
        self._session = session
        if self.resume is not None:
            self.resume.stop_if_finished()
        self._signals = InterruptSignals(self._on_signal)
        self.line = self._make_line()
        # xdist starts its workers in its own sessionstart and hands them the endpoint then: an embedded server
        # must be running by that time. A remote endpoint is checked once the workers report llmbench items.
        if self.distributed and not self.config.option.collectonly and self.settings.uses_local_server \
                and suites_requested(self.config, self.settings):
            self.prepare()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        self._before_loop(session)
        result = yield
        self._finish(session)  # every result is in: failed gates become reports while pytest still counts them
        return result

    def _before_loop(self, session: pytest.Session) -> None:
        option = self.config.option
        if option.collectonly or option.setuponly or option.setupplan:
            return
        if not self.distributed and self.lifecycle.endpoint is None:
            if session.testsfailed and not option.continue_on_collection_errors:
                return  # pytest is about to stop on collection errors
            if not any(isinstance(item, LLMBenchItem) for item in session.items):
                return
            self.prepare()
        self.recorder.tracker.restart()  # rates and ETA count from here, not from pytest's start-up
        if self.settings.monitor:  # after the embedded server's start, so its model load is not in the figures
            self.recorder.monitor = make_monitor(self.config, self.settings)
            self.recorder.monitor.start()

    def prepare(self) -> None:
        """Check the output folder and the endpoint before any request is sent; stop the session if not."""
        try:
            check_writable(self.output)
            clean_temp_files(self.output)
            # The embedded server logs into the run folder; a remote server is checked first, so that an
            # unreachable one leaves no empty run folder behind.
            if self.settings.uses_local_server:
                self.lifecycle.output = self.ensure_run_dir()
            endpoint = self.lifecycle.prepare()
            self.ensure_run_dir()
        except (OutputNotWritable, EndpointError) as exc:
            stop_for_usage(exc)
        except OSError as exc:
            stop_for_usage(OutputNotWritable(f"cannot make a run folder in {self.output}: {exc.strerror or exc}"))
        self.target = describe_target(self.config, self.settings, endpoint, endpoint_source(
            self.config.getoption, self.config.getini), sorted(self.suite_files) or self._named_suites())
        self._say_target()
        self._start_server_metrics(endpoint.url)

    def _adopt_target(self, endpoint: Endpoint) -> None:
        """Say what the run tests from a worker's own endpoint, when the controller prepared none."""
        if self.target is None:
            self.target = describe_target(self.config, self.settings, endpoint, endpoint_source(
                self.config.getoption, self.config.getini), self._named_suites())
            self._say_target()

    def _named_suites(self) -> list[str]:
        """The suites the options name, as the user wrote them: under xdist the embedded server starts (and the
        run says what it tests) before any worker has collected."""
        return [str(path) for path in self.settings.suite]

    def ensure_run_dir(self) -> Path:
        """This run's folder, made on first use, with ``<output>/latest`` pointing at it. Raises OSError."""
        if self.run_dir is None:
            self.run_dir = self.resume.folder if self.resume else make_run_folder(self.output, self.started)
            if self.run_dir.parent.resolve() == self.output.resolve():  # a resumed run may live in another folder
                point_latest(self.output, self.run_dir)
            self.recorder.use_folder(self.run_dir)
            self.recorder.journal = open_journal(self.config, self.settings, self.run_dir,
                                                 self.started.isoformat(timespec="seconds"))
        return self.run_dir

    def _say_target(self) -> None:
        """Say once what is tested: in the header when it is still to come, else as the next line; then warn
        about named models the server does not list."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.target is not None and self._header_shown and reporter is not None \
                and self.config.get_verbosity() >= 0:
            if self.line is not None:
                self.line.interrupt()
            if terminal_line(reporter):  # xdist's "collecting: 1/2 workers" status, say
                reporter.write("\n")
            reporter.write_line(safe(self.target.line()), bold=True)
        self._warn_live(self.target.warnings if self.target is not None else [])

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        self._header_shown = True
        return [safe(self.target.line())] if self.target is not None else []

    def _start_server_metrics(self, endpoint: str) -> None:
        """Look for the servers' /metrics once per session, whichever path prepares the endpoint."""
        if self._server_checked:
            return
        self._server_checked = True
        self.server, line = start_scraper(self.settings, endpoint, embedded=self.settings.uses_local_server)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if line is not None and reporter is not None and self.config.get_verbosity() >= 0:
            reporter.write_line(safe(line))
        if self.server is not None:
            self.recorder.server = self.server.store

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        handed = self.lifecycle.for_workers()
        if handed is not None:
            node_input(node)[WORKERINPUT_KEY] = handed
        if self.resume is not None:
            node_input(node)[RESUME_INPUT_KEY] = self.resume.replays(self.config).to_workerinput()


    # -- results --------------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        ours = [item for item in session.items if isinstance(item, LLMBenchItem)]
        self.recorder.tracker.set_total(len(ours))
        self.suite_files.update(item.nodeid.split("::", 1)[0] for item in ours)
        if self.resume is not None:
            self._take_resumed(self.resume.keep_from_items(ours))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.suite_files.update(nodeid.split("::", 1)[0] for nodeid in ids if is_llmbench_nodeid(nodeid))
        total = sum(map(is_llmbench_nodeid, ids))
        self.recorder.tracker.set_total(max(self.recorder.progress.total_tests, total))
        if self.resume is not None and not self._resumed_taken:  # every worker collected the same
            self._take_resumed(self.resume.keep_from_ids(self.config, [i for i in ids if is_llmbench_nodeid(i)]))
        if total and self.lifecycle.endpoint is None:  # before the first item is scheduled
            self.prepare()

    def _take_resumed(self, entries: list[dict[str, Any]]) -> None:
        """The recorded results this session keeps enter the record now; their items only show them again."""
        self._resumed_taken = True
        for entry in entries:
            self.recorder.add_resumed(entry)

    @pytest.hookimpl(trylast=True)  # after pytest has written its own dot or line for the test
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.resume is not None and report.nodeid in self.resume.kept:
            return  # recorded by an earlier session: its row came from the journal
        deliveries = deliveries_of(report, self.inbox)  # several: a hand-written test's llm_client requests
        if deliveries:
            self._ensure_run_dir_quietly()
            for delivery in deliveries:
                self._stop_on_refusal(delivery)
                if delivery.endpoint is not None:
                    self.workers_endpoints.adopt(delivery.worker, delivery.endpoint)
                self._waiting.append((delivery, report.passed))
            self._record_ready()
        elif report.failed and report.when in ("call", "???") and is_llmbench_nodeid(report.nodeid):
            self._show(self.recorder.record_lost(report.nodeid, lost_reason(report)))
        elif report.skipped and DURATION_SKIP in str(report.longrepr) and is_llmbench_nodeid(report.nodeid):
            self.load.duration_skipped += 1  # not a test of the run: it never sent its request
            self.recorder.tracker.set_total(self.recorder.progress.total_tests - 1)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        raw = node_output(node).get(WORKEROUTPUT_KEY)  # a crashed worker has none
        if raw:
            self._take_load_report(json.loads(raw))

    def _stop_on_refusal(self, delivery: Delivery) -> None:
        """The first 401/403 on a request stops the session once, as the pre-flight check would have: every
        other request would be refused the same way (a server whose /v1/models is open but completions not)."""
        error = delivery.result.error
        if self._auth_stopped or error is None or error.kind != "auth" or self._session is None:
            return
        self._auth_stopped = True
        reason = f"llmbench: the server refused a request ({error.message}); stopping"
        self._session.shouldstop = reason
        stop_xdist(self.config, reason)
        self._warn_live([reason])

    def _ensure_run_dir_quietly(self) -> None:
        """A result that comes before any set-up (an llm_client test without suites) still gets its folder;
        if that fails, the writer records the lost files and the run goes on."""
        if self.run_dir is None:
            try:
                self.ensure_run_dir()
            except OSError as exc:
                self._warn_live([f"cannot make the run folder in {self.output}: {exc.strerror or exc}"])

    def _take_load_report(self, report: dict[str, Any]) -> None:
        """A process's warm-up, cancellations and the answers that arrived for items the stop kept from running."""
        self.load.add_process(report)
        for raw, passed in report["leftovers"]:
            self.recorder.record(Delivery.from_json(raw), passed=passed)

    def _record_ready(self, everything: bool = False) -> None:
        """Record results whose window the server's readings cover (a reading after its end has come, or the
        scraper is late); without server metrics, at once. Tests never wait for this."""
        ready = [item for item in self._waiting if everything or self._server_has_read(item[0].window)]
        for item in ready:
            self._waiting.remove(item)
            self._show(self.recorder.record(item[0], passed=item[1]))

    def _server_has_read(self, window: tuple[float, float] | None) -> bool:
        return self.server is None or self.server.has_read(window)

    def _show(self, progress: Any) -> None:
        if self.load.plan.dispatched:
            driver = self.config.stash.get(DRIVER_KEY, None)
            progress.in_flight = driver.sending if driver is not None and not self.distributed else None
            progress.offered_rate, progress.achieved_rate = self.load.rates()
        if self._progress_hook.get_hookimpls():  # a snapshot to keep, made only for someone who listens
            self._progress_hook(progress=dataclasses.replace(progress), config=self.config)
        self._warn_live(self.recorder.pop_new_alerts() + self.recorder.pop_new_write_failures()
                        + self._server_messages())
        if self.line is not None:
            self.line.update(progress)

    def _server_messages(self) -> list[str]:
        return self.server.pop_messages() if self.server is not None else []

    def _warn_live(self, messages: list[str]) -> None:
        """Health alerts and lost files are shown at once, then again as pytest warnings at the end."""
        if not messages:
            return
        self.warnings += messages
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if self.line is not None:
            self.line.interrupt()
        for message in messages:
            reporter.write_line(f"llmbench WARNING: {safe(message)}", yellow=True, bold=True)

    def _make_line(self) -> ProgressLine | None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 0:
            return None
        live = is_live_terminal(reporter) and self.config.get_verbosity() == 0
        return ProgressLine(reporter, live=live)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, Any] | None:
        """On a live terminal the progress line stands for llmbench items: no dot of their own (the word keeps
        pytest counting them for its percentage); any other test first moves the line out of its way."""
        if is_gate_nodeid(report.nodeid):  # counted and summarised, but no letter after pytest's "[100%]"
            return ("failed", "", ("FAILED", {"red": True})) if report.failed else None
        if self.resume is not None and report.nodeid in self.resume.kept and report.when == "call":
            live = self.line is not None and self.line.live
            return report.outcome, "" if live else "r" if report.passed else "F", f"{report.outcome.upper()} (resumed)"
        if self.line is None or not self.line.live:
            return None
        if is_llmbench_nodeid(report.nodeid):
            return (report.outcome, "", report.outcome.upper()) if report.when == "call" else None
        self.line.interrupt()
        return None

    def _on_signal(self, reason: str) -> None:
        self.partial_reason = self.partial_reason or reason

    def pytest_keyboard_interrupt(self) -> None:
        self.partial_reason = self.partial_reason or "interrupted (KeyboardInterrupt)"

    # -- end of the run -------------------------------------------------------------------------

    def _finish(self, session: pytest.Session, *, interrupted: bool = False) -> None:
        """Build the batch and check the gates, once: after the loop, or at session end when it was cut short."""
        if self.batch is not None:
            return
        driver = self.config.stash.get(DRIVER_KEY, None)
        if driver is not None and not self.distributed and not self._load_taken:  # a worker's: testnodedown
            self._load_taken = True
            driver.stop()
            self._take_load_report(driver.report())
        if self.server is not None:
            self.server.stop()  # its last reading covers the end of the last test
        self._record_ready(everything=True)
        if self.line is not None:
            self.line.interrupt()
        if interrupted and self.partial_reason is None:
            self.partial_reason = "interrupted"
        progress = self.recorder.progress
        if self.partial_reason is None and progress.completed_tests < progress.total_tests:
            self.partial_reason = (f"{progress.total_tests - progress.completed_tests} of {progress.total_tests} "
                                   f"tests did not finish ({session.shouldstop or session.shouldfail or 'stopped'})")
        if self.recorder.monitor is not None:
            self.recorder.monitor.stop()
        if not self.recorder.rows:
            return
        if self.run_dir is not None:
            self._warn_live(self.workers_endpoints.move_logs(self.run_dir))
        run = run_metadata(self.config, self.settings, self.lifecycle.endpoint or self.workers_endpoints.endpoint,
                           self.target, self.run_dir, self.started)
        batch = self.recorder.build_batch(run=run, partial_reason=self.partial_reason,
                                          wall_time_s=time.monotonic() - self._started_monotonic)
        batch["resumed_from"] = self.resume.section() if self.resume is not None else None
        if self.server is not None:
            batch["server"] = self.server.batch_section(batch["aggregate"])
        if self.recorder.spans is not None:
            batch["tracing"] = self.recorder.spans.finish(session_attributes(batch))
            if batch["tracing"]["dropped"]:
                self.warnings.append(dropped_spans(batch["tracing"]))
        if self.gates.active:
            self.gate_result = self.gates.check({**batch["aggregate"], **slo_view(batch.get("server"))},
                                                rows=batch["tests"], run=batch["run"])
            if self.gate_result.pairing is not None:
                self.warnings += [f"baseline: {w}" for w in self.gate_result.pairing.warnings]
            self.warnings += [f"{w} (with --llmbench-few-samples fail such a gate fails)"
                              for w in self.gate_result.sample_warnings]
            batch["gates"] = self.gate_result.to_dict()
            if not interrupted:  # failed gates in pytest's own counts, short summary and JUnit XML
                log_gate_failures(self.config, session, self.gate_result)
        self.batch = batch

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._finish(session, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self._count_unreported()
        if self.line is not None:
            self.line.interrupt()
        self._warn_live(self.recorder.pop_new_alerts() + self.recorder.pop_new_write_failures()
                        + self._server_messages())
        if self.batch is not None:
            self._write_files(session, self.batch)
        # last: under -W error a warning raises, and the files are safe by now
        self.warnings_as_errors = emit_warnings(self.warnings)
        if self.warnings_as_errors:
            fail_session(session)

    def _count_unreported(self) -> None:
        """After an interrupt, pytest's last line counts only the items that reported; a load run records the
        answers already received too (cut-off items, other processes' leftovers). Those are counted on the line as
        "N recorded after the interrupt", so that it never says "no tests ran" over recorded results."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        reported = sum(getattr(report, "when", None) == "call" and is_llmbench_nodeid(report.nodeid)
                       for key in ("passed", "failed") for report in reporter.stats.get(key, ()))
        unreported = sum(not row["llm_client"] for row in self.recorder.rows) - reported
        if unreported > 0:
            count_on_last_line(reporter, "recorded after the interrupt", unreported)

    def _write_files(self, session: pytest.Session, batch: Batch) -> None:
        if self.gate_result is not None and self.gate_result.failed:
            fail_session(session)
        try:
            self.config.hook.pytest_llmbench_batch(batch=batch, config=self.config)
        except Exception as exc:  # noqa: BLE001 - a conftest bug must not cost the run its batch file
            self.warnings.append(f"a pytest_llmbench_batch hook raised {type(exc).__name__}: {exc}")
        self.batch_path = self.recorder.write_batch(batch, self.started)
        self.recorder.end_journal(self.partial_reason, self.batch_path)
        if self.batch_path is None and self.recorder.batch_failure is not None:
            self.batch_problem = self.recorder.batch_failure.reason
            self.warnings.append(f"batch file NOT WRITTEN: {self.batch_problem}")
            fail_session(session)
        self.report_path = write_html_report(self.config, self.settings, batch, self.run_dir or self.output,
                                             self.started, self.warnings)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.batch is None:
            return
        files = [str(self.batch_path)] if self.batch_path else []
        if self.report_path is not None:
            files.append(str(self.report_path))
        files.append(f"{self.run_dir or self.output}{'' if files else ' (per-test files)'}")
        write_end_summary(terminalreporter, self.batch, files, self.gate_result, self.batch_problem,
                          self.warnings_as_errors)

    def pytest_unconfigure(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._signals is not None:
            self._signals.restore()

