"""Every reach into pytest's or xdist's objects beyond their public API, each behind one function.

No public API offers what these do (redraw a terminal line, read a worker's queue, evaluate skip marks before
the item runs, stop xdist's controller). tests/test_pytest_xdist_canary.py pins each against the installed
versions, and pyproject.toml bounds those versions: if pytest or xdist moves one, the canary says which.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import xdist  # type: ignore[import-untyped]

try:  # pytest's own reading of skip marks; private, so a pytest without it sends skipped items' requests
    from _pytest.skipping import evaluate_skip_marks, evaluate_xfail_marks
except ImportError:  # pragma: no cover
    evaluate_skip_marks = evaluate_xfail_marks = None  # type: ignore[assignment]

XDIST_CONTROLLER = "dsession"  # the name xdist registers its controller plugin (``DSession``) under


def is_xdist_worker(config: pytest.Config) -> bool:
    """xdist's own test, which reads only ``.config`` of the request or session it is given (there is neither
    at ``pytest_configure``)."""
    return bool(xdist.is_xdist_worker(SimpleNamespace(config=config)))


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """What xdist's controller handed this worker (``config.workerinput``); None outside a worker."""
    given: dict[str, Any] | None = getattr(config, "workerinput", None)
    return given


def worker_id(config: pytest.Config) -> str | None:
    given = worker_input(config)
    return None if given is None else given.get("workerid")


def worker_output(config: pytest.Config) -> dict[str, Any] | None:
    """The dict an xdist worker sends back to the controller at its end (``config.workeroutput``)."""
    output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    return output


def node_input(node: Any) -> dict[str, Any]:
    """On the controller, what a worker node will find as its ``config.workerinput``."""
    given: dict[str, Any] = node.workerinput
    return given


def node_output(node: Any) -> dict[str, Any]:
    """On the controller, what a finished worker node sent back; empty for a worker that crashed."""
    output: dict[str, Any] = getattr(node, "workeroutput", {})
    return output


def is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin(XDIST_CONTROLLER)


def xdist_stopping(config: pytest.Config) -> bool:
    """Whether xdist's controller is stopping the session (``DSession.shouldstop``: -x, --maxfail)."""
    dsession = config.pluginmanager.get_plugin(XDIST_CONTROLLER)
    return bool(dsession is not None and dsession.shouldstop)


def stop_xdist(config: pytest.Config, reason: str) -> None:
    """Make xdist's controller stop scheduling, as ``session.shouldstop`` does without xdist."""
    dsession = config.pluginmanager.get_plugin(XDIST_CONTROLLER)
    if dsession is not None:
        dsession.shouldstop = reason


def worker_indices_ahead(config: pytest.Config) -> list[Any] | None:
    """In an xdist worker, the indices into ``session.items`` it is running and holds, in order: the current
    item, the next one and the queue the controller has sent (``WorkerInteractor.torun``); None outside one."""
    if not is_xdist_worker(config):
        return None
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__name__ == "WorkerInteractor":
            with plugin.torun.lock() as queue:
                queued = list(queue)
            return [plugin.item_index, plugin.nextitem_index, *queued]
    return None


def marks_readable() -> bool:
    """Whether pytest still has the private evaluators ``marks_keep_from_running`` uses."""
    return evaluate_skip_marks is not None


def marks_keep_from_running(item: pytest.Item) -> bool:
    """True when a ``skip``/``skipif`` or ``xfail(run=False)`` mark already says pytest will not run the item."""
    if not marks_readable():
        return False
    try:
        if evaluate_skip_marks(item) is not None:
            return True
        xfailed = evaluate_xfail_marks(item)
    except Exception:  # noqa: BLE001 - a broken condition: pytest reports it when the item runs
        return False
    return xfailed is not None and not xfailed.run and not item.config.option.runxfail


def terminal_line(reporter: Any, redraw: str | None = None, pad_to: int = 0) -> int:
    """The width of the terminal's current line; with ``redraw``, first redraw that line in place.

    No public API redraws a line: this uses ``TerminalReporter._tw`` and ``TerminalWriter._current_line``. The
    writer appends every "\\r" redraw to what it thinks the line holds, so that is reset, or it grows for the
    whole run and pytest's own width checks go wrong.
    """
    writer = getattr(reporter, "_tw", None)
    if writer is None:
        return 0
    if redraw is not None:
        writer.write("\r" + redraw.ljust(pad_to), flush=True)
        writer._current_line = redraw
    return int(writer.width_of_current_line)


def count_on_last_line(reporter: Any, kind: str, count: int) -> None:
    """Add ``count`` entries of ``kind`` to pytest's last line ("3 passed, 6 <kind> in 2.1s").

    The line is built from ``TerminalReporter.stats``, whose kinds pytest caches (``_set_main_color``): an entry
    added at session finish shows only once that cache is rebuilt."""
    reporter.stats.setdefault(kind, []).extend([SimpleNamespace(count_towards_summary=True)] * count)
    refresh = getattr(reporter, "_set_main_color", None)
    if refresh is not None:
        refresh()
