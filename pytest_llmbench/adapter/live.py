"""What the controller shows while the run goes: the progress line, what the run tests, and health alerts, lost
files and other warnings at once (the controller emits them again as pytest warnings at the end)."""

from __future__ import annotations

from typing import Any

import pytest

from ..session.progress import ExecutionProgress
from ..session.target import Target
from .internals import terminal_line
from .terminal import ProgressLine, is_live_terminal, safe


class LiveOutput:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.line: ProgressLine | None = None
        self.warnings: list[str] = []  # every warning shown, for the end of the session
        self.header_shown = False  # pytest has written its header: what the run tests goes on a line of its own

    def _reporter(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def start(self) -> None:
        """The progress line, unless there is no terminal reporter or -q; redrawn in place on a live terminal."""
        reporter = self._reporter()
        if reporter is None or self.config.get_verbosity() < 0:
            self.line = None
            return
        self.line = ProgressLine(reporter, live=is_live_terminal(reporter) and self.config.get_verbosity() == 0)

    def interrupt(self) -> None:
        """Leave the live line where it is before something else is written."""
        if self.line is not None:
            self.line.interrupt()

    def update(self, progress: ExecutionProgress) -> None:
        if self.line is not None:
            self.line.update(progress)

    def say(self, text: str) -> None:
        """A line of its own (which servers' /metrics were found), unless -q."""
        reporter = self._reporter()
        if reporter is not None and self.config.get_verbosity() >= 0:
            reporter.write_line(safe(text))

    def say_target(self, target: Target) -> None:
        """Say once what is tested: in the header when it is still to come, else as the next line; then warn
        about named models the server does not list."""
        reporter = self._reporter()
        if self.header_shown and reporter is not None and self.config.get_verbosity() >= 0:
            self.interrupt()
            if terminal_line(reporter):  # xdist's "collecting: 1/2 workers" status, say
                reporter.write("\n")
            reporter.write_line(safe(target.line()), bold=True)
        self.warn(target.warnings)

    def warn(self, messages: list[str]) -> None:
        """Health alerts and lost files are shown at once, then again as pytest warnings at the end."""
        if not messages:
            return
        self.warnings += messages
        reporter = self._reporter()
        if reporter is None:
            return
        self.interrupt()
        for message in messages:
            reporter.write_line(f"llmbench WARNING: {safe(message)}", yellow=True, bold=True)
