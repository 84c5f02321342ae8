"""A baseline compared honestly: test by test on the tests both runs share, with a warning for every way the two
runs differ (test set, models, streaming, concurrency), so that "p50 regressed 158%" never compares a one-test,
non-streamed run with a five-test streamed one without saying so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..batch import Batch, Row, row_value
from ..result import METRICS
from .intervals import DEFAULT_LEVEL
from .significance import MIN_SAMPLES, rank_sum_p
from .stats import StatsAccumulator, finite_number, metric_key

# Figures of the whole run's span: over a subset of its tests they mean nothing, so they stay the runs' own.
_RUN_WIDE = ("request_throughput", "output_throughput", "duration_s", "wall_time_s")
SHOWN_REGRESSIONS = 5


def _key(row: Row) -> tuple[str, str]:
    return str(row.get("test_id")), str(row.get("model") or "")


@dataclass
class TestDelta:
    """One test's latency before and now: the median of its repeats (``--llmbench-repeat``), and with at least
    three each side, the rank test on them (metrics/significance.py)."""

    __test__ = False  # keep pytest from collecting this class

    test_id: str
    model: str
    baseline_s: float
    now_s: float
    repeats: tuple[int, int] = (1, 1)  # successful results each side
    p_value: float | None = None  # None: too few repeats to test
    significant: bool | None = None

    @property
    def change_pct(self) -> float | None:
        return (self.now_s - self.baseline_s) / self.baseline_s * 100.0 if self.baseline_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {"test_id": self.test_id, "model": self.model, "baseline_s": self.baseline_s, "now_s": self.now_s,
                "change_pct": self.change_pct, "repeats": list(self.repeats), "p_value": self.p_value,
                "significant": self.significant}


def delta_of(key: tuple[str, str], before: list[float], now: list[float], level: float) -> TestDelta:
    """The test's change over its repeats; tested when each side has enough of them."""
    tested = min(len(before), len(now)) >= MIN_SAMPLES
    p_value = rank_sum_p(before, now) if tested else None
    return TestDelta(key[0], key[1], statistics.median(before), statistics.median(now), (len(before), len(now)),
                     p_value, None if p_value is None else p_value < 1.0 - level)


def latencies(rows: list[Row]) -> dict[tuple[str, str], list[float]]:
    """Each test's successful latencies (seconds) by test id and model: several with ``--llmbench-repeat``."""
    found: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        seconds = finite_number(row.get("execution_time")) if isinstance(row, dict) else None
        if seconds and row.get("success"):
            found.setdefault(_key(row), []).append(seconds)
    return found


@dataclass
class Pairing:
    """The two runs side by side: what they share, how they differ, and each shared test's latency change."""

    shared: int = 0
    only_baseline: int = 0
    only_now: int = 0
    warnings: list[str] = field(default_factory=list)
    per_test: list[TestDelta] = field(default_factory=list)

    def largest_regressions(self, n: int = SHOWN_REGRESSIONS) -> list[TestDelta]:
        rising = [d for d in self.per_test  # a rise its repeats show is not significant is no regression
                  if d.change_pct is not None and d.change_pct > 0 and d.significant is not False]
        return sorted(rising, key=lambda d: d.change_pct or 0.0, reverse=True)[:n]


def pair(baseline: Batch, rows: list[Row], run: Mapping[str, Any], level: float = DEFAULT_LEVEL) -> Pairing:
    """Pair the baseline batch with this run's rows and run record; per test, its repeats tested at ``level``."""
    before = {_key(row): row for row in baseline.get("tests") or []}
    now = {_key(row): row for row in rows}
    shared = before.keys() & now.keys()
    pairing = Pairing(shared=len(shared), only_baseline=len(before.keys() - shared),
                      only_now=len(now.keys() - shared))
    if before and (pairing.only_baseline or pairing.only_now):
        pairing.warnings.append(
            f"the test sets differ: {pairing.shared} tests in both, {pairing.only_baseline} only in the baseline, "
            f"{pairing.only_now} only in this run; figures are compared on the {pairing.shared} shared tests")
    old_run: Mapping[str, Any] = baseline.get("run") or {}
    for what, old, new in (("models", sorted(old_run.get("models") or []), sorted(run.get("models") or [])),
                           ("streaming", _option(old_run, "stream"), _option(run, "stream")),
                           ("concurrency", _option(old_run, "concurrency"), _option(run, "concurrency")),
                           ("xdist workers", old_run.get("workers"), run.get("workers"))):
        if old is not None and new is not None and old != new:
            pairing.warnings.append(f"{what} differ: {old} in the baseline, {new} in this run")
    old_s, new_s = latencies(baseline.get("tests") or []), latencies(rows)
    pairing.per_test = [delta_of(key, old_s[key], new_s[key], level) for key in sorted(old_s.keys() & new_s.keys())]
    return pairing


def only(rows: list[Row], keys: set[tuple[str, str]]) -> list[Row]:
    """The rows of the tests ``keys`` names (by test id and model)."""
    return [row for row in rows if _key(row) in keys]


def shared_aggregate(rows: list[Row], keys: set[tuple[str, str]], whole: Mapping[str, Any]) -> dict[str, Any]:
    """The run's figures over the shared tests only; run-wide throughputs stay those of the whole run."""
    accumulator = StatsAccumulator()
    shared = only(rows, keys)
    for row in shared:
        accumulator.add(row)
    figures = accumulator.summary(whole.get("duration_s") or 0.0)
    figures.update({name: whole.get(name) for name in _RUN_WIDE})
    figures["passed_tests"] = sum(bool(row.get("passed")) for row in shared)
    figures.update(_chunk_means([row for row in shared if row.get("success")]))
    return figures


def _chunk_means(rows: list[Row]) -> dict[str, Any]:
    """A per-chunk metric's (ITL's) means from the rows, which keep each request's mean and count of gaps but not
    the gaps: the pooled mean is exact, its percentiles cannot be had and stay None."""
    figures: dict[str, Any] = {}
    for metric in (m for m in METRICS if m.per_chunk):
        mean_of, count_of = metric.row_field, f"{metric.field}_count"
        pairs = [(row_value(row, mean_of), row_value(row, count_of)) for row in rows
                 if finite_number(row_value(row, mean_of)) is not None and row_value(row, count_of)]
        if pairs:
            count = sum(n for _, n in pairs)
            figures[f"count_{metric.key}"] = count
            figures[metric_key("mean", metric.key)] = math.fsum(mean * n for mean, n in pairs) / count * 1000.0
            figures[f"mean_{metric.key}_per_request_ms"] = math.fsum(mean for mean, _ in pairs) / len(pairs) * 1000.0
    return figures


def shared_keys(baseline: Batch, rows: list[Row]) -> set[tuple[str, str]]:
    return keys_of(baseline.get("tests") or []) & keys_of(rows)


def keys_of(rows: list[Row]) -> set[tuple[str, str]]:
    """The tests of a run as comparisons pair them: by test id and model."""
    return {_key(row) for row in rows if isinstance(row, dict)}


def _option(run: Mapping[str, Any], name: str) -> Any:
    return (run.get("options") or {}).get(name)
