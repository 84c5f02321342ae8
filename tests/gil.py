"""Starving a process's other threads on purpose: one C call that keeps the GIL."""

from __future__ import annotations

import time


def hold_the_gil(seconds: float) -> tuple[int, int]:
    """Keep the GIL for about ``seconds`` in one C call: no other thread of this process runs meanwhile (a thread
    blocked in a system call finishes it, then waits). Returns the hold's (start, end) in perf_counter_ns."""
    per_million = min(_timed_million() for _ in range(5))  # the least: a busy machine's preemption only adds
    start = time.perf_counter_ns()
    sum(range(int(seconds / per_million * 1_000_000)))
    return start, time.perf_counter_ns()


def _timed_million() -> float:
    started = time.perf_counter()
    sum(range(1_000_000))
    return time.perf_counter() - started
