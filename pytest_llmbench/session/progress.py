"""How far the run is: one ``ExecutionProgress`` record, updated as each result reaches the controller."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ExecutionProgress:
    """A snapshot handed to ``pytest_llmbench_progress`` and drawn in the live line. Times in seconds.

    Names mean what they mean in the batch file: ``successful_tests`` counts requests that succeeded,
    ``passed_tests`` items that passed (request, answer checks and SLOs), and the averages are over successful
    requests; ``output_throughput`` is completion tokens per second of the run so far.
    """

    total_tests: int = 0
    completed_tests: int = 0
    successful_tests: int = 0
    failed_tests: int = 0
    passed_tests: int = 0
    current_test: str | None = None
    estimated_remaining_time: float | None = None
    average_execution_time: float = 0.0
    start_time: float = 0.0  # Unix time
    elapsed_time: float = 0.0
    current_category: str | None = None
    tests_per_second: float = 0.0
    total_tokens_generated: int = 0
    average_tokens_per_second: float = 0.0
    output_throughput: float = 0.0
    in_flight: int | None = None  # requests sent and not yet answered (a load run in one process)
    offered_rate: float | None = None  # --llmbench-request-rate, requests/s
    achieved_rate: float | None = None  # requests/s sent so far, first send to last
    resumed_tests: int = 0  # recorded by an earlier session of the run (--llmbench-resume): done, not sent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProgressTracker:
    """Keeps ``ExecutionProgress`` current; elapsed time runs on the monotonic clock."""

    def __init__(self, total_tests: int = 0) -> None:
        self.progress = ExecutionProgress(total_tests=total_tests)
        self.restart()
        self._execution_time_sum = 0.0
        self._tokens_per_second_sum = 0.0
        self._with_rate = 0
        self._resumed_tokens = 0

    def restart(self) -> None:
        """Start the clock now: when the tests begin, not when pytest did."""
        self.progress.start_time = time.time()
        self._started = time.monotonic()

    def set_total(self, total_tests: int) -> None:
        self.progress.total_tests = total_tests

    def update(self, *, name: str, category: str | None, success: bool, passed: bool, execution_time: float,
               completion_tokens: int | None, tokens_per_second: float | None,
               resumed: bool = False) -> ExecutionProgress:
        """Count one finished test; a ``resumed`` one counts as done but not in this session's rates."""
        p = self.progress
        p.completed_tests += 1
        p.resumed_tests += resumed
        p.successful_tests += success
        p.failed_tests += not success
        p.passed_tests += passed
        p.current_test, p.current_category = name, category
        if success:
            self._execution_time_sum += execution_time
            p.average_execution_time = self._execution_time_sum / p.successful_tests
        if tokens_per_second is not None:
            self._tokens_per_second_sum += tokens_per_second
            self._with_rate += 1
            p.average_tokens_per_second = self._tokens_per_second_sum / self._with_rate
        if resumed:
            self._resumed_tokens += completion_tokens or 0
        p.total_tokens_generated += completion_tokens or 0
        p.elapsed_time = time.monotonic() - self._started
        if p.elapsed_time > 0:
            p.tests_per_second = (p.completed_tests - p.resumed_tests) / p.elapsed_time
            p.output_throughput = (p.total_tokens_generated - self._resumed_tokens) / p.elapsed_time
        p.total_tests = max(p.total_tests, p.completed_tests)
        remaining = p.total_tests - p.completed_tests
        p.estimated_remaining_time = remaining / p.tests_per_second if p.tests_per_second else None
        return p
