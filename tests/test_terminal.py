"""The terminal's private parts the progress line relies on, pinned against the installed pytest and urllib3.

``adapter/internals.py::terminal_line`` is the one function touching pytest's private terminal writer; the transport
overrides two urllib3 internals. If an upgrade renames either, these tests fail loudly instead of the progress line
or the insecure mode breaking quietly.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

from pytest_llmbench.adapter.internals import terminal_line


@pytest.fixture
def reporter(pytester: pytest.Pytester) -> tuple[TerminalReporter, io.StringIO]:
    out = io.StringIO()
    return TerminalReporter(pytester.parseconfig(), file=out), out


def test_terminal_line_redraws_in_place_and_pytest_sees_only_the_last_drawing(reporter: Any) -> None:
    terminal, out = reporter
    terminal.write("..F")
    assert terminal_line(terminal) == 3  # pytest's dots are on the line

    assert terminal_line(terminal, "llmbench 1/9", pad_to=3) == len("llmbench 1/9")
    assert terminal_line(terminal, "llmbench 2/9", pad_to=12) == len("llmbench 2/9")  # not 24: reset each time
    assert out.getvalue() == "..F\rllmbench 1/9\rllmbench 2/9"

    terminal_line(terminal, "ok", pad_to=12)
    assert out.getvalue().endswith("\rok          ")  # spaces over what the longer line left


def test_a_reporter_without_a_writer_has_no_line() -> None:
    assert terminal_line(object()) == 0
