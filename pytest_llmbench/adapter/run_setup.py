"""Before the first request: the output folder, this run's own folder, the endpoint, what the run tests (the
header line) and the servers' /metrics. Done once, by whichever hook comes first to need it (xdist's session start
for an embedded server, the workers' collection, or the test loop)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ..exceptions import EndpointError, OutputNotWritable
from ..options import Settings, endpoint_source
from ..session.endpoint import Endpoint, EndpointLifecycle, WorkersEndpoints
from ..session.recorder import Recorder
from ..session.run_folder import make_run_folder, point_latest
from ..session.server_scrape import ServerScraper, start_scraper
from ..session.storage import check_writable, clean_temp_files
from ..session.target import Target, describe_target
from .live import LiveOutput
from .process import stop_for_usage
from .resume import Resume, open_journal
from .terminal import safe


class RunSetup:
    def __init__(self, config: pytest.Config, settings: Settings, lifecycle: EndpointLifecycle, recorder: Recorder,
                 live: LiveOutput, resume: Resume | None) -> None:
        self.config = config
        self.settings = settings
        self.lifecycle = lifecycle
        self.recorder = recorder
        self.live = live
        self.resume = resume  # --llmbench-resume: the run folder is the earlier run's
        self.output = lifecycle.output
        # This run's own folder, <output>/<run id>/, made before the first thing is written there: every file of
        # the run goes in it (per-test files, batch file, report, server metrics, the embedded server's log).
        self.run_dir: Path | None = None
        self.started = datetime.now(timezone.utc)  # names the run folder and the batch file
        self.target: Target | None = None  # what the run tests: the header line
        self.suite_files: set[str] = set()
        self.server: ServerScraper | None = None
        self._server_checked = False
        self.workers_endpoints = WorkersEndpoints(self.output, self.adopt_target)  # what workers found themselves

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
        self.target = describe_target(self.settings, endpoint, endpoint_source(
            self.config.getoption, self.config.getini), sorted(self.suite_files) or self._named_suites(),
            workers=self._workers())
        self.live.say_target(self.target)
        self._start_server_metrics(endpoint.url)

    def adopt_target(self, endpoint: Endpoint) -> None:
        """Say what the run tests from a worker's own endpoint, when the controller prepared none."""
        if self.target is None:
            self.target = describe_target(self.settings, endpoint, endpoint_source(
                self.config.getoption, self.config.getini), self._named_suites(), workers=self._workers())
            self.live.say_target(self.target)

    def _workers(self) -> int:
        return int(self.config.getoption("numprocesses", None) or 0)

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

    def ensure_run_dir_quietly(self) -> None:
        """A result that comes before any set-up (an llm_client test without suites) still gets its folder;
        if that fails, the writer records the lost files and the run goes on."""
        if self.run_dir is None:
            try:
                self.ensure_run_dir()
            except OSError as exc:
                self.live.warn([f"cannot make the run folder in {self.output}: {exc.strerror or exc}"])

    def header(self) -> list[str]:
        """pytest's header lines: what the run tests, when it is known by then."""
        self.live.header_shown = True
        return [safe(self.target.line())] if self.target is not None else []

    def _start_server_metrics(self, endpoint: str) -> None:
        """Look for the servers' /metrics once per session, whichever path prepares the endpoint."""
        if self._server_checked:
            return
        self._server_checked = True
        self.server, line = start_scraper(self.settings, endpoint, embedded=self.settings.uses_local_server)
        if line is not None:
            self.live.say(line)
        if self.server is not None:
            self.recorder.server = self.server.store

    def has_read(self, window: tuple[float, float] | None) -> bool:
        """Whether the servers' readings cover ``window`` (always, without server metrics)."""
        return self.server is None or self.server.has_read(window)
