"""Workloads as serving benchmarks define them: synthetic token shapes, datasets and trace replay.

``generate`` turns a suite's checked ``workload`` into its requests; suite.py makes them test cases.
"""

from __future__ import annotations

from .datasets import dataset_requests
from .spec import Add, Request, Workload, synthetic_requests
from .trace import trace_requests


def generate(workload: Workload, add: Add) -> list[Request]:
    """The workload's requests in a fixed order; problems go to ``add`` (each naming the field)."""
    if workload.kind == "dataset":
        return dataset_requests(workload, add)
    if workload.kind == "trace":
        return trace_requests(workload, add)
    return synthetic_requests(workload, add)


def replays(raw: object) -> bool:
    """Whether a suite's parsed JSON replays a trace: its requests leave at their own times, so the run is a
    load run even without load options."""
    workload = raw.get("workload") if isinstance(raw, dict) else None
    return isinstance(workload, dict) and workload.get("type") == "trace"
