"""Failed run-wide gates as pytest reports, so that pytest itself counts them.

A missed ``--llmbench-slo`` or ``--llmbench-compare-fail`` is a failure of the run, not of any one test; left to
the exit status alone, pytest's last line still read "4 passed". Each failed gate is logged as a failed ``call``
report of its own node id, ``llmbench::slo[ttft_p99]``, ``llmbench::compare[p50_latency_ms]`` or
``llmbench::capacity[min]``: it then shows
in the short test summary, the final counts line, ``session.testsfailed`` (the exit status), ``--lf``'s cache
(a gate matches no collected test, so ``--lf`` reruns everything) and JUnit XML, like any failed test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from ..metrics.gates import GateResult

GATE_PREFIX = "llmbench::"
_KINDS = ("slo[", "compare[", "drift[", "capacity[")


def is_gate_nodeid(nodeid: str) -> bool:
    return nodeid.startswith(GATE_PREFIX) and nodeid[len(GATE_PREFIX):].startswith(_KINDS)


def log_gate_failures(config: pytest.Config, session: pytest.Session, result: GateResult) -> None:
    """One failed report per failed gate, through the hook every reporter listens to."""
    now = time.time()
    failed = result.failed_gates
    session.testscollected += len(failed)  # keeps -v's "[100%]" true: the gates are counted items now
    for gate, message in failed:
        report = pytest.TestReport(
            nodeid=GATE_PREFIX + gate, location=("llmbench", None, f"llmbench gate {gate}"), keywords={},
            outcome="failed", longrepr=message, when="call", duration=0.0, start=now, stop=now)
        config.hook.pytest_runtest_logreport(report=report)


def gate_summary_lines(result: GateResult) -> list[tuple[str, dict[str, Any]]]:
    """The llmbench summary's gate lines: each passed gate, then each failed one."""
    lines = [(f"gate passed: {text}", {"green": True}) for text in result.passed_gates]
    lines += [(f"gate FAILED: {message}", {"red": True, "bold": True}) for _, message in result.failed_gates]
    return lines
