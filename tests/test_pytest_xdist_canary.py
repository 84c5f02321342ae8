"""A canary for the pytest and xdist internals the adapter reaches (pyproject bounds both for them).

Each function of pytest_llmbench/adapter/internals.py stands for one thing no public API offers; the load
scheduler in adapter/scheduling.py subclasses xdist's ``LoadScheduling``. If pytest or xdist moves any of them,
skipped tests would send requests, a load run would stop sending ahead, ``-x`` would not stop xdist or the live
line would garble the terminal, each without an error: these tests say so first, by name.
"""

from __future__ import annotations

import inspect

import pytest
import xdist  # type: ignore[import-untyped]
from _pytest.terminal import TerminalReporter
from xdist.scheduler import LoadScheduling  # type: ignore[import-untyped]
from xdist.workermanage import WorkerController  # type: ignore[import-untyped]

from pytest_llmbench.adapter import internals


def test_pytest_and_xdist_are_the_major_versions_the_adapter_was_written_for() -> None:
    assert pytest.__version__.split(".")[0] in {"8", "9"}, "check adapter/internals.py, then lift pytest's cap"
    assert xdist.__version__.split(".")[0] == "3", "check adapter/internals.py and scheduling.py, then lift the cap"


def test_skip_and_xfail_marks_are_still_read_by_pytests_private_evaluators(pytester: pytest.Pytester) -> None:
    items = pytester.getitems("""
        import pytest

        def test_plain(): pass

        @pytest.mark.skip(reason="no")
        def test_skipped(): pass

        @pytest.mark.skipif(True, reason="no")
        def test_skipif(): pass

        @pytest.mark.xfail(run=False)
        def test_xfail_not_run(): pass

        @pytest.mark.xfail
        def test_xfail_run(): pass
    """)
    assert internals.marks_readable(), "_pytest.skipping.evaluate_skip_marks moved"
    kept = {item.name: internals.marks_keep_from_running(item) for item in items}
    assert kept == {"test_plain": False, "test_skipped": True, "test_skipif": True, "test_xfail_not_run": True,
                    "test_xfail_run": False}


def test_the_terminal_writer_and_its_current_line_are_still_where_the_live_line_redraws(pytester: pytest.Pytester) -> None:
    reporter = TerminalReporter(pytester.parseconfig())
    writer = reporter._tw
    assert hasattr(writer, "_current_line") and hasattr(writer, "width_of_current_line")
    assert "self._current_line" in inspect.getsource(type(writer).write)


def test_a_worker_still_sees_its_queue_and_the_controller_still_stops_xdist(pytester: pytest.Pytester) -> None:
    """One real xdist run: in the worker, the queue the driver reads; on the controller, the stop flag
    that ``-x`` and a refused request set."""
    pytester.makeconftest("""
        from pytest_llmbench.adapter import internals

        def pytest_sessionfinish(session):
            config = session.config
            if internals.is_xdist_worker(config):
                internals.worker_output(config)["canary"] = "worker"
                return
            assert internals.is_xdist_controller(config) and not internals.xdist_stopping(config)
            internals.stop_xdist(config, "canary")
            assert internals.xdist_stopping(config)
            print("CONTROLLER OK")

        def pytest_testnodedown(node, error):
            assert internals.node_output(node)["canary"] == "worker"
            print("NODE OUTPUT OK")
    """)
    pytester.makepyfile("""
        from pytest_llmbench.adapter import internals

        def test_queue(pytestconfig):
            assert internals.is_xdist_worker(pytestconfig)
            assert internals.worker_id(pytestconfig) == "gw0"
            ahead = internals.worker_indices_ahead(pytestconfig)
            assert ahead is not None and ahead[:2] == [0, 1]  # this item, the next; then the queue (and xdist's markers)

        def test_second():
            pass
    """)
    result = pytester.runpytest_subprocess("-n", "1", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*NODE OUTPUT OK*", "*CONTROLLER OK*"])


def test_the_load_scheduler_still_finds_what_it_uses_on_xdists_load_scheduling(pytester: pytest.Pytester) -> None:
    scheduler = LoadScheduling(pytester.parseconfig("--tx", "2*popen"))
    for attribute in ("nodes", "node2pending", "node2collection", "pending", "collection_is_completed", "log"):
        assert hasattr(scheduler, attribute), f"LoadScheduling.{attribute} moved"
    for method in ("schedule", "check_schedule", "remove_pending_tests_from_node",
                   "_check_nodes_have_same_collection"):
        assert callable(getattr(LoadScheduling, method, None)), f"LoadScheduling.{method} moved"
    assert list(inspect.signature(LoadScheduling.check_schedule).parameters)[:2] == ["self", "node"]
    for method in ("send_runtest_some", "send_steal", "shutdown"):
        assert callable(getattr(WorkerController, method, None)), f"WorkerController.{method} moved"


def test_an_entry_added_at_session_finish_still_reaches_pytests_last_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_llmbench.adapter import internals

        def pytest_sessionfinish(session):
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            internals.count_on_last_line(reporter, "recorded after the interrupt", 3)
    """)
    pytester.makepyfile("def test_one(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*= 1 passed, 3 recorded after the interrupt in *"])
