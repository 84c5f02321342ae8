"""One sweep level's row of figures, whether it meets the SLOs, and the knee: the highest level that does.

A level meets the SLOs when every ``--llmbench-slo`` holds over that level's own pooled statistics and, unless
one of them gates ``goodput`` (e.g. ``goodput=0.99``), every request of the level succeeded and met its
per-test SLO. No peer names this level; it is the answer to "how much load can my server take".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .slo import RunSlo, check_run_slos, undecided_warnings

# (batch key, summary key) of the figures each level reports
LEVEL_FIGURES = (("request_throughput", "request_throughput"), ("output_throughput", "output_throughput"),
                 ("goodput", "goodput"), ("p50_latency_ms", "p50_latency_ms"), ("p99_latency_ms", "p99_latency_ms"),
                 ("p50_ttft_ms", "p50_ttft_ms"), ("p99_ttft_ms", "p99_ttft_ms"), ("p50_tpot_ms", "p50_tpot_ms"))


def level_row(label: str, concurrency: int, rate: float, summary: dict[str, Any], achieved_rate: float | None,
              slos: Iterable[RunSlo], undecided: str = "warn") -> dict[str, Any]:
    """The sweep table's row: offered load, what was achieved, latency, and the SLO verdict."""
    total = summary["total_tests"]
    row: dict[str, Any] = {"level": label, "concurrency": concurrency or None,
                           "offered_rate": None if rate == math.inf else rate, "achieved_rate": achieved_rate,
                           "requests": total,
                           "error_rate": summary["failed_tests"] / total if total else None}
    row.update({key: summary.get(source) for key, source in LEVEL_FIGURES})
    row.update({f"count_{metric}": summary.get(f"count_{metric}") for metric in ("latency", "ttft", "tpot")})
    row["confidence_level"] = summary.get("confidence_level")
    goodput = summary.get("goodput")
    row["goodput_throughput"] = (goodput * total / summary["duration_s"]
                                 if goodput is not None and summary.get("duration_s") else None)
    slos = list(slos)
    misses = [miss.message for miss in check_run_slos(slos, summary, undecided)]
    row["undecided"] = undecided_warnings(slos, summary) if undecided == "warn" else []
    if not any(slo.key == "goodput" for slo in slos) and total and goodput is not None and goodput < 1:
        misses.append(f"{round((1 - goodput) * total)} of {total} requests failed or missed a per-test SLO")
    if not total:
        misses.append("no request finished at this level")
    row["meets_slos"], row["slo_misses"] = not misses, misses
    return row


def knee(rows: list[dict[str, Any]]) -> str | None:
    """The label of the highest level (by offered load) that meets the SLOs, or None when none does."""
    passing = [row for row in rows if row["meets_slos"]]
    if not passing:
        return None
    return str(max(passing, key=lambda row: (row["offered_rate"] or math.inf, row["concurrency"] or 0))["level"])
