"""Starving a process's other threads on purpose: one C call that keeps the GIL."""

from __future__ import annotations

import time


def hold_the_gil(seconds: float) -> tuple[int, int]:
    """Keep the GIL for about ``seconds`` in one C call: no other thread of this process runs meanwhile (a thread
    blocked in a system call finishes it, then waits). Returns the hold's (start, end) in perf_counter_ns."""
    started = time.perf_counter()
    sum(range(1_000_000))
    per_million = time.perf_counter() - started
    start = time.perf_counter_ns()
    sum(range(int(seconds / per_million * 1_000_000)))
    return start, time.perf_counter_ns()
