"""Comparison with a previous run's batch file, and regression gates in the manner of pytest-benchmark's
--benchmark-compare-fail: a limit in percent per summary metric, signed by the direction that is worse.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch import Batch, Row
from ..batch import Delta as DeltaEntry
from ..exceptions import BatchFileError
from .batch_file import read_batch
from .intervals import DEFAULT_LEVEL
from .samples import count_key, rule, short_of
from .significance import Significance, describe, judge_change
from .slo import RUN_NAMES, summary_key
from .stats import POOLED, finite_number, format_value, metric_of, summary_keys

MIN_CHANGE = 5.0  # --llmbench-compare-min-change: a smaller change, significant or not, is not coloured
# What the terminal table shows when no metric is named: the figures people watch between runs (each metric's
# are declared in result.METRICS).
DEFAULT_METRICS = (
    "success_rate",
    "goodput",
    *(metric.summary_key(stat) for metric in POOLED for stat in metric.baseline),
    "request_throughput",
    "output_throughput",
)


@dataclass(frozen=True)
class Delta:
    name: str
    baseline: float | None
    current: float | None
    change_pct: float | None  # None when either side is missing or the baseline is 0
    baseline_count: int | None = None  # the samples a percentile rests on, each side (None: no percentile)
    current_count: int | None = None
    significance: Significance | None = None  # tested on both runs' per-request values; None: no test possible

    @property
    def settled(self) -> bool:
        """Whether the change may be coloured or gated: significant, or a figure no test applies to (a throughput,
        a baseline without rows), which is judged on its value alone as before."""
        return self.significance is None or self.significance.significant

    def noted(self, min_change: float) -> bool:
        """Worth a colour: settled and at least ``min_change`` percent (--llmbench-compare-min-change)."""
        return self.settled and self.change_pct is not None and abs(self.change_pct) >= min_change

    def entry(self) -> DeltaEntry:
        """As the batch keeps it (``gates.comparison.deltas``)."""
        tested, interval = self.significance, self.significance and self.significance.interval_pct
        return DeltaEntry(name=self.name, baseline=self.baseline, current=self.current, change_pct=self.change_pct,
                          baseline_count=self.baseline_count, current_count=self.current_count,
                          p_value=tested.p_value if tested else None,
                          significant=tested.significant if tested else None,
                          change_interval=list(interval) if interval else None)

    def short(self) -> str | None:
        """Why either side's percentile cannot be vouched for (metrics/samples.py), naming the side."""
        now, before = short_of(self.name, self.current_count), short_of(self.name, self.baseline_count)
        return now or (before and f"{before} in the baseline")


@dataclass(frozen=True)
class Threshold:
    metric: str
    pct: float  # > 0: fail when the metric rises more than pct %; < 0: when it falls more than -pct %

    @property
    def text(self) -> str:
        return f"limit {self.pct:+g}%"


def load_baseline(path: str | os.PathLike[str]) -> Batch:
    """The whole batch document, checked (batch_file.py); its "aggregate" object is what compare() takes.
    Raises BatchFileError (a ValueError) naming the file and its first problem."""
    try:
        return read_batch(Path(path))
    except BatchFileError as exc:
        raise BatchFileError(f"baseline file {exc}") from None


def compare(
    baseline_aggregate: dict[str, Any], current_aggregate: dict[str, Any], metrics: Iterable[str] | None = None,
    rows: tuple[Sequence[Row], Sequence[Row]] | None = None, level: float = DEFAULT_LEVEL,
) -> list[Delta]:
    """Each figure before and now; with both runs' ``rows``, each change tested (metrics/significance.py)."""
    deltas = []
    for name in DEFAULT_METRICS if metrics is None else metrics:
        baseline = finite_number(baseline_aggregate.get(name))
        current = finite_number(current_aggregate.get(name))
        change = None
        if baseline and current is not None:
            change = (current - baseline) / abs(baseline) * 100.0
        counted = count_key(name)
        counts = (baseline_aggregate.get(counted), current_aggregate.get(counted)) if counted else (None, None)
        tested = judge_change(name, *rows, level) if rows else None
        deltas.append(Delta(name, baseline, current, change, *counts, tested))
    return deltas


def parse_threshold(spec: str) -> Threshold:
    """"latency_p50:10%" (fail on a rise over 10%) or "tokens_per_second_mean:-5%" (on a fall over 5%).

    Metric names are spelt as in run SLOs (``ttft_p99``); summary keys (``p99_ttft_ms``) are accepted too, and
    so is ``=`` for ``:``.
    """
    metric, sep, pct_text = (part.strip() for part in spec.rpartition(":" if ":" in spec else "="))
    if not sep or not metric:
        raise ValueError(f"invalid threshold {spec!r}: write <metric>:<percent>, e.g. latency_p50:10%")
    known = summary_keys()
    written, metric = metric, summary_key(metric) or metric
    if metric not in known:
        close = difflib.get_close_matches(written, sorted({*known, *RUN_NAMES}), n=5, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ValueError(f"invalid threshold {spec!r}: unknown metric {written!r}{hint}")
    try:
        pct = float(pct_text.removesuffix("%"))
    except ValueError:
        pct = math.nan
    if not math.isfinite(pct) or pct == 0:
        raise ValueError(
            f"invalid threshold {spec!r}: the limit must be a non-zero percentage, positive to fail on a rise "
            "(latency) or negative to fail on a fall (throughput)"
        )
    return Threshold(metric, pct)


def metrics_to_compare(thresholds: Iterable[Threshold]) -> list[str]:
    """The default table plus every metric a threshold gates, so check_regressions finds each one."""
    names = list(DEFAULT_METRICS)
    names += [t.metric for t in thresholds if t.metric not in names]
    return names


def check_regressions(deltas: Sequence[Delta], thresholds: Iterable[Threshold]) -> list[str]:
    """One message per threshold broken; a metric missing on either side fails rather than passing unseen."""
    by_name = {delta.name: delta for delta in deltas}
    failures = []
    for threshold in thresholds:
        delta = by_name.get(threshold.metric)
        if delta is None:
            raise ValueError(f"{threshold.metric} was not compared: pass metrics_to_compare(thresholds) to compare()")
        message = _regression(delta, threshold)
        if message:
            failures.append(message)
    return failures


def _regression(delta: Delta, threshold: Threshold) -> str | None:
    name, baseline, current = delta.name, delta.baseline, delta.current
    values = f"({format_value(name, baseline, unit=False)} -> {format_value(name, current)})"
    if baseline is None or current is None:
        where = "the baseline" if baseline is None else "this run"
        return f"{name} could not be compared {values}: not measured in {where}, {threshold.text}"
    change = delta.change_pct
    if change is None:  # a zero baseline: any change is infinitely large
        change = math.copysign(math.inf, current - baseline) if current != baseline else 0.0
    if delta.settled and ((change > threshold.pct) if threshold.pct > 0 else (change < threshold.pct)):
        amount = f"{change:.1f}%" if math.isfinite(change) else "from zero"
        tested = "" if delta.significance is None else f", {describe(delta.significance)}"
        return f"{name} regressed {amount} {values}, {threshold.text}{tested}"
    return None


def format_table(deltas: Sequence[Delta], min_change: float = 0.0) -> list[str]:
    """Each figure before and now, the change and its test: "worse"/"better" marks a significant change of at least
    ``min_change`` percent; "-" for a percentile on too few samples (metrics/samples.py)."""
    rows = [("metric", "baseline", "now", "change", "significance")]
    for delta in deltas:
        before = "-" if short_of(delta.name, delta.baseline_count) else format_value(delta.name, delta.baseline)
        now = "-" if short_of(delta.name, delta.current_count) else format_value(delta.name, delta.current)
        change = "n/a" if delta.change_pct is None or delta.short() else f"{delta.change_pct:+.1f}%"
        tested = "" if delta.significance is None else describe(delta.significance)
        mark = verdict_of(delta) if delta.noted(min_change) and not delta.short() else ""
        rows.append((delta.name, before, now, change, f"{mark:<6} {tested}".rstrip()))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}  "
        f"{row[4]:<{widths[4]}}" for row in rows
    ]
    return lines + ([f"  -: {rule({})}"] if any(delta.short() for delta in deltas) else [])


def better_of(key: str) -> str | None:
    """Which way a summary figure should move: as the registry declares a metric's; other times down, rates and
    shares up; None for a figure with no good direction."""
    metric = metric_of(key)
    if metric is not None:
        return metric.better
    if key.endswith("_ms") or key == "average_execution_time":
        return "lower"
    if "throughput" in key or "rate" in key or "tokens_per_second" in key or key == "goodput":
        return "higher"
    return None


def verdict_of(delta: Delta) -> str:
    """"worse" or "better" by the direction the figure should move; "" for no change or no direction."""
    better = better_of(delta.name)
    if better is None or not delta.change_pct:
        return ""
    return "better" if (delta.change_pct < 0) == (better == "lower") else "worse"
