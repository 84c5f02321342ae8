"""The controller's side of a session: pytest's and xdist's hooks, each handing its part to the piece that does it.

Registered only in the process that owns the session (the only one without xdist, the controller with it),
so files and the terminal have exactly one writer. ``RunSetup`` (run_setup.py) prepares the run, ``Intake``
(session/intake.py) takes the results in, ``LiveOutput`` (live.py) shows the run as it goes; what is left here is
the order of things, resuming, stopping (a refused request, a signal) and the end of the run: the batch, the
gates, the files.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ..batch import Batch
from ..http.client import LLMClient
from ..http.redact import Secrets
from ..metrics.gates import GateResult, Gates
from ..metrics.hardware.monitor import ErrorRateAlert
from ..metrics.server.section import slo_view
from ..metrics.stats import StatsAccumulator
from ..options import Settings
from ..session.endpoint import WORKERINPUT_KEY, EndpointLifecycle
from ..session.handoff import Delivery, Inbox, deliveries_of, is_llmbench_nodeid
from ..session.intake import Intake
from ..session.load.record import LoadRecord
from ..session.recorder import Recorder
from ..session.semantic import REQUEST_DEADLINE_S, embed_pending
from ..session.tracing import SpanExport, dropped_spans, session_attributes
from .capacity import capacity_gate, found, run_search
from .driver import DRIVER_KEY, DURATION_SKIP, WORKEROUTPUT_KEY
from .finish import emit_warnings, fail_session, lost_reason, run_metadata, write_end_summary, write_html_report
from .gate_reports import is_gate_nodeid, log_gate_failures
from .internals import (
    count_on_last_line,
    is_xdist_controller,
    node_input,
    node_output,
    stop_xdist,
)
from .items import LOAD_PLAN_KEY, SUITES_KEY, LLMBenchItem, suites_requested
from .live import LiveOutput
from .process import InterruptSignals, make_monitor, process_runner
from .resume import WORKERINPUT_KEY as RESUME_INPUT_KEY
from .resume import Resume, baseline_answers
from .run_setup import RunSetup


class Controller:
    def __init__(self, config: pytest.Config, settings: Settings, gates: Gates, lifecycle: EndpointLifecycle) -> None:
        self.config = config
        self.settings = settings
        self.gates = gates
        self.lifecycle = lifecycle
        self._load_taken = False
        self._session: pytest.Session | None = None
        self._auth_stopped = False
        self.load = LoadRecord(config.stash[LOAD_PLAN_KEY], slos=gates.slos, bucket_s=settings.timeline_bucket,
                               undecided=gates.undecided, level=settings.confidence)
        # a sweep's and a search's levels are meant to cross the SLOs: they name the knee or the capacity instead
        if self.load.plan.sweep_kind or settings.search:
            self.gates = dataclasses.replace(gates, slos=[])
        self.recorder = Recorder(lifecycle.output, stats=StatsAccumulator(level=settings.confidence),
                                 error_alert=ErrorRateAlert(threshold=settings.alert_error_rate),
                                 secrets=Secrets(settings.secrets()), load=self.load, test_files=settings.test_files)
        if settings.otlp:
            self.recorder.spans = SpanExport(settings.otlp)
        self.live = LiveOutput(config)
        self.resume = Resume.open(config, settings, lifecycle.output, config.stash[SUITES_KEY]) if settings.resume \
            else None
        self.setup = RunSetup(config, settings, lifecycle, self.recorder, self.live, self.resume)
        self.intake = Intake(self.recorder, self.load, show=self._show, has_read=self.setup.has_read)
        self._started_monotonic = time.monotonic()
        self.partial_reason: str | None = None
        self.batch_path: Path | None = None
        self.report_path: Path | None = None
        self.gate_result: GateResult | None = None
        self.batch: Batch | None = None
        self.batch_problem: str | None = None  # why the batch file could not be written
        self.warnings_as_errors: list[str] = []  # warnings a -W error filter turned into errors
        self._progress_hook = config.hook.pytest_llmbench_progress
        self.inbox: Inbox = {}  # results of tests run in this process, by node id (see handoff.py)
        self._resumed_taken = False
        self._signals: InterruptSignals | None = None
        self.recorder.drift, self.recorder.drift_fail = baseline_answers(gates, self.live.warnings), settings.drift_fail
        if self.recorder.drift is not None:
            self.recorder.drift.semantic = settings.embedding_model is not None
        if self.resume is not None:  # forced: the run's record says under what it went on
            self.live.warnings += [f"resumed under other options (--llmbench-resume-force): {line}"
                              for line in self.resume.differences]

    # -- set-up ---------------------------------------------------------------------------------

    @property
    def distributed(self) -> bool:
        return is_xdist_controller(self.config)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.setup.started = datetime.now(timezone.utc)  # the clock pytest's own "in 5.09s" runs on starts here too
        self._started_monotonic = time.monotonic()
        self._session = session
        if self.resume is not None:
            self.resume.stop_if_finished()
        self._signals = InterruptSignals(self._on_signal)
        self.live.start()
        # xdist starts its workers in its own sessionstart and hands them the endpoint then: an embedded server
        # must be running by that time. A remote endpoint is checked once the workers report llmbench items.
        if self.distributed and not self.config.option.collectonly and self.settings.uses_local_server \
                and suites_requested(self.config, self.settings):
            self.setup.prepare()

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
            self.setup.prepare()
        run_search(self.config, session, lambda: process_runner(self.config), self.settings, self.live)
        self.recorder.tracker.restart()  # rates and ETA count from here, not from pytest's start-up
        if self.settings.monitor:  # after the embedded server's start, so its model load is not in the figures
            self.recorder.monitor = make_monitor(self.config, self.settings)
            self.recorder.monitor.start()

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return self.setup.header()

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
        self.setup.suite_files.update(item.nodeid.split("::", 1)[0] for item in ours)
        if self.resume is not None:
            self._take_resumed(self.resume.keep_from_items(ours))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.setup.suite_files.update(nodeid.split("::", 1)[0] for nodeid in ids if is_llmbench_nodeid(nodeid))
        total = sum(map(is_llmbench_nodeid, ids))
        self.recorder.tracker.set_total(max(self.recorder.progress.total_tests, total))
        if self.resume is not None and not self._resumed_taken:  # every worker collected the same
            self._take_resumed(self.resume.keep_from_ids(self.config, [i for i in ids if is_llmbench_nodeid(i)]))
        if total and self.lifecycle.endpoint is None:  # before the first item is scheduled
            self.setup.prepare()

    def _take_resumed(self, entries: list[dict[str, Any]]) -> None:
        """The recorded results this session keeps enter the record now; their items only show them again."""
        self._resumed_taken = True
        for entry in entries:
            self.recorder.add_resumed(entry)

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str) -> None:
        """llmbench's collection warnings (a dataset's malformed lines) go in the batch too, each once: every xdist
        worker collects, and so warns, alike."""
        message = str(warning_message.message)
        if when == "collect" and message.startswith("llmbench: ") \
                and message not in self.recorder.collection_warnings:
            self.recorder.collection_warnings.append(message)

    @pytest.hookimpl(trylast=True)  # after pytest has written its own dot or line for the test
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.resume is not None and report.nodeid in self.resume.kept:
            return  # recorded by an earlier session: its row came from the journal
        deliveries = deliveries_of(report, self.inbox)  # several: a hand-written test's llm_client requests
        if deliveries:
            self.setup.ensure_run_dir_quietly()
            for delivery in deliveries:
                self._stop_on_refusal(delivery)
                if delivery.endpoint is not None:
                    self.setup.workers_endpoints.adopt(delivery.worker, delivery.endpoint)
                self.intake.hold(delivery, report.passed)
            self.intake.record_ready()
        elif report.failed and report.when in ("call", "???") and is_llmbench_nodeid(report.nodeid):
            self._show(self.recorder.record_lost(report.nodeid, lost_reason(report)))
        elif report.skipped and DURATION_SKIP in str(report.longrepr) and is_llmbench_nodeid(report.nodeid):
            self.load.duration_skipped += 1  # not a test of the run: it never sent its request
            self.recorder.tracker.set_total(self.recorder.progress.total_tests - 1)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        raw = node_output(node).get(WORKEROUTPUT_KEY)  # a crashed worker has none
        if raw:
            self.intake.take_load_report(json.loads(raw))

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
        self.live.warn([reason])

    def _show(self, progress: Any) -> None:
        if self.load.plan.dispatched:
            driver = self.config.stash.get(DRIVER_KEY, None)
            progress.in_flight = driver.sending if driver is not None and not self.distributed else None
            progress.offered_rate, progress.achieved_rate = self.load.rates()
        if self._progress_hook.get_hookimpls():  # a snapshot to keep, made only for someone who listens
            self._progress_hook(progress=dataclasses.replace(progress), config=self.config)
        self.live.warn(self.recorder.pop_new_alerts() + self.recorder.pop_new_write_failures()
                       + self._server_messages())
        self.live.update(progress)

    def _server_messages(self) -> list[str]:
        return self.setup.server.pop_messages() if self.setup.server is not None else []

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, Any] | None:
        """On a live terminal the progress line stands for llmbench items: no dot of their own (the word keeps
        pytest counting them for its percentage); any other test first moves the line out of its way."""
        if is_gate_nodeid(report.nodeid):  # counted and summarised, but no letter after pytest's "[100%]"
            return ("failed", "", ("FAILED", {"red": True})) if report.failed else None
        if self.resume is not None and report.nodeid in self.resume.kept and report.when == "call":
            live = self.live.line is not None and self.live.line.live
            return report.outcome, "" if live else "r" if report.passed else "F", f"{report.outcome.upper()} (resumed)"
        if self.live.line is None or not self.live.line.live:
            return None
        if is_llmbench_nodeid(report.nodeid):
            return (report.outcome, "", report.outcome.upper()) if report.when == "call" else None
        self.live.interrupt()
        return None

    def _on_signal(self, reason: str) -> None:
        self.partial_reason = self.partial_reason or reason

    def pytest_keyboard_interrupt(self) -> None:
        self.partial_reason = self.partial_reason or "interrupted (KeyboardInterrupt)"

    # -- end of the run -------------------------------------------------------------------------

    def _semantic_drift(self, endpoint: str | None) -> dict[str, Any] | None:
        """--llmbench-embedding-model: the changed answers' cosines with the baseline's, before the batch is built."""
        model, drift = self.settings.embedding_model, self.recorder.drift
        url = self.settings.embedding_endpoint or endpoint
        if model is None or drift is None or url is None:
            return None
        config = self.settings.client_config(url)
        config.timeout, config.retries = min(config.timeout, REQUEST_DEADLINE_S), 0  # within the run's end
        client = LLMClient(config, model=model)
        try:
            section = embed_pending(drift, client, model)
        finally:
            client.close()
        if section["problem"]:
            self.live.warnings.append(f"answer drift: {section['changed'] - section['embedded']} of "
                                      f"{section['changed']} changed answers have no cosine: {section['problem']}")
        return section

    def _finish(self, session: pytest.Session, *, interrupted: bool = False) -> None:
        """Build the batch and check the gates, once: after the loop, or at session end when it was cut short."""
        if self.batch is not None:
            return
        driver = self.config.stash.get(DRIVER_KEY, None)
        if driver is not None and not self.distributed and not self._load_taken:  # a worker's: testnodedown
            self._load_taken = True
            driver.stop()
            self.intake.take_load_report(driver.report())
        server = self.setup.server
        if server is not None:
            server.stop()  # its last reading covers the end of the last test
        self.intake.record_ready(everything=True)
        self.live.interrupt()
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
        setup = self.setup
        if setup.run_dir is not None:
            self.live.warn(setup.workers_endpoints.move_logs(setup.run_dir))
        run = run_metadata(self.config, self.settings, self.lifecycle.endpoint or setup.workers_endpoints.endpoint,
                           setup.target, setup.run_dir, setup.started)
        semantic = self._semantic_drift(run.get("endpoint"))
        batch = self.recorder.build_batch(run=run, partial_reason=self.partial_reason,
                                          wall_time_s=time.monotonic() - self._started_monotonic)
        if semantic is not None and batch["drift"] is not None:
            batch["drift"]["semantic"] = semantic
        batch["resumed_from"] = self.resume.section() if self.resume is not None else None
        if server is not None:
            batch["server"] = server.batch_section(batch["aggregate"], self.recorder.first_sent)
        if self.recorder.spans is not None:
            batch["tracing"] = self.recorder.spans.finish(session_attributes(batch))
            if batch["tracing"]["dropped"]:
                self.live.warnings.append(dropped_spans(batch["tracing"]))
        if self.gates.active:
            self.gate_result = self.gates.check({**batch["aggregate"], **slo_view(batch.get("server"))},
                                                rows=batch["tests"], run=batch["run"])
            if self.gate_result.pairing is not None:
                self.live.warnings += [f"baseline: {w}" for w in self.gate_result.pairing.warnings]
            self.live.warnings += [f"{w} (with --llmbench-few-samples fail such a gate fails)"
                              for w in self.gate_result.sample_warnings]
            self.live.warnings += [f"{w} (with --llmbench-slo-undecided fail such a gate fails)"
                              for w in self.gate_result.undecided]
        capacity = found(self.config, self.gates.baseline)
        if capacity is not None:
            batch["capacity"] = capacity
        self.gate_result = capacity_gate(self.gate_result, capacity)
        if self.gate_result is not None:
            batch["gates"] = self.gate_result.to_dict()
            if not interrupted:  # failed gates in pytest's own counts, short summary and JUnit XML
                log_gate_failures(self.config, session, self.gate_result)
        self.batch = batch

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._finish(session, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self._count_unreported()
        self.live.interrupt()
        self.live.warn(self.recorder.pop_new_alerts() + self.recorder.pop_new_write_failures()
                       + self._server_messages())
        if self.batch is not None:
            self._write_files(session, self.batch)
        # last: under -W error a warning raises, and the files are safe by now
        self.warnings_as_errors = emit_warnings(self.live.warnings)
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
            self.live.warnings.append(f"a pytest_llmbench_batch hook raised {type(exc).__name__}: {exc}")
        self.batch_path = self.recorder.write_batch(batch, self.setup.started)
        self.recorder.end_journal(self.partial_reason, self.batch_path)
        if self.batch_path is None and self.recorder.batch_failure is not None:
            self.batch_problem = self.recorder.batch_failure.reason
            self.live.warnings.append(f"batch file NOT WRITTEN: {self.batch_problem}")
            fail_session(session)
        self.report_path = write_html_report(self.config, self.settings, batch, self.setup.run_dir or self.setup.output,
                                             self.setup.started, self.live.warnings, self.gates)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.batch is None:
            return
        files = [str(self.batch_path)] if self.batch_path else []
        if self.report_path is not None:
            files.append(str(self.report_path))
        files.append(f"{self.setup.run_dir or self.setup.output}{'' if files else ' (per-test files)'}")
        write_end_summary(terminalreporter, self.batch, files, self.gate_result, self.batch_problem,
                          self.warnings_as_errors)

    def pytest_unconfigure(self) -> None:
        if self.setup.server is not None:
            self.setup.server.stop()
        if self._signals is not None:
            self._signals.restore()

