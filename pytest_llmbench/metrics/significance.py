"""Is a change between two runs real? One test everywhere: Mann-Whitney U on the per-request values of both runs.

A comparison of two p50s says nothing about noise; the rank-sum test does, without assuming any latency
distribution. Each headline metric's values are taken from the batch rows as the statistics pool them (successful
requests; a ``timing_degraded`` one is left out of the metrics timed by token arrival), and a share (success rate,
goodput) is the same test on each request's 0 or 1. The change also gets an interval in percent of the baseline's
figure: for a percentile, from each run's order-statistics interval at the level that makes both hold together
(metrics/intervals.py); for a mean, Welch's normal interval. A per-chunk metric (ITL) keeps one mean per request
in its rows, so its test runs on those means and its percentiles get no interval.

Written here rather than taken from ``scipy.stats.mannwhitneyu``: scipy is a large dependency for a formula of
twenty lines that every comparison needs, with or without extras. This is scipy's "asymptotic" method with its
tie and continuity corrections; tests/test_significance.py checks it against values scipy gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from ..batch import Row, row_value
from .intervals import DEFAULT_LEVEL, percentile_interval
from .samples import split_key
from .stats import PERCENTILE_STATS, finite_number, metric_of, percentile

MIN_SAMPLES = 3  # each side: with fewer, no rank test says anything

# Shares judged on each request's 0 or 1, as the statistics count them (metrics/stats.py, _Pool.add).
_SHARES: dict[str, Callable[[Row], bool]] = {
    "success_rate": lambda row: bool(row.get("success")),
    "goodput": lambda row: bool(row.get("success")) and row.get("slo_passed") is not False,
}


@dataclass(frozen=True)
class Significance:
    p_value: float
    significant: bool  # p below 1 - level
    interval_pct: tuple[float | None, float | None] | None  # the change, in % of the baseline's figure


def rank_sum_p(before: Sequence[float], after: Sequence[float]) -> float:
    """The two-sided p-value of the Mann-Whitney U test (normal approximation, tie and continuity corrected)."""
    n1, n2 = len(before), len(after)
    pooled = sorted([(value, 0) for value in before] + [(value, 1) for value in after])
    total = n1 + n2
    rank_sum = ties = 0.0
    start = 0
    while start < total:
        end = start
        while end + 1 < total and pooled[end + 1][0] == pooled[start][0]:
            end += 1
        size = end - start + 1
        ties += size ** 3 - size
        rank_sum += (start + end + 2) / 2.0 * sum(1 for k in range(start, end + 1) if pooled[k][1] == 0)
        start = end + 1
    u = rank_sum - n1 * (n1 + 1) / 2.0
    variance = n1 * n2 / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    if variance <= 0:  # every value equal: nothing changed
        return 1.0
    z = max(0.0, abs(u - n1 * n2 / 2.0) - 0.5) / math.sqrt(variance)
    return min(1.0, 2.0 * (1.0 - NormalDist().cdf(z)))


def values(name: str, rows: Sequence[Row]) -> list[float] | None:
    """The per-request values the summary key ``name`` rests on; None for a figure with none (a throughput)."""
    if name in _SHARES:
        return [float(_SHARES[name](row)) for row in rows]
    metric = metric_of(name)
    if metric is None:
        return None
    found = []
    for row in rows:
        if not row.get("success") or (metric.arrival_timed and row.get("timing_degraded")):
            continue
        value = finite_number(row_value(row, metric.row_field))
        if value is not None:
            found.append(value)
    return found


def judge_change(name: str, before_rows: Sequence[Row], after_rows: Sequence[Row],
                level: float = DEFAULT_LEVEL) -> Significance | None:
    """The change of the summary key ``name`` between two runs' rows, tested; None when it cannot be."""
    before, after = values(name, before_rows), values(name, after_rows)
    if before is None or after is None or len(before) < MIN_SAMPLES or len(after) < MIN_SAMPLES:
        return None
    p_value = rank_sum_p(before, after)
    return Significance(p_value, p_value < 1.0 - level, _interval(name, sorted(before), sorted(after), level))


def _interval(name: str, before: list[float], after: list[float],
              level: float) -> tuple[float | None, float | None] | None:
    metric, split = metric_of(name), split_key(name)
    if metric is None or metric.per_chunk:
        return None
    if name == metric.summary_key("mean"):
        base = math.fsum(before) / len(before)
        spread = math.sqrt(_variance(before) / len(before) + _variance(after) / len(after))
        half = NormalDist().inv_cdf(0.5 + level / 2.0) * spread
        diff = math.fsum(after) / len(after) - base
        return _percent(diff - half, base), _percent(diff + half, base)
    if split is None:
        return None
    q = PERCENTILE_STATS[split[0]]
    each = 1.0 - (1.0 - level) / 2.0  # both runs' intervals hold together with at least ``level``
    (b_low, b_high), (a_low, a_high) = percentile_interval(before, q, each), percentile_interval(after, q, each)
    base = percentile(before, q)
    low = None if a_low is None or b_high is None else _percent(a_low - b_high, base)
    high = None if a_high is None or b_low is None else _percent(a_high - b_low, base)
    return low, high


def _variance(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)


def _percent(diff: float, base: float) -> float | None:
    return diff / abs(base) * 100.0 if base else None


def describe(found: Significance | None) -> str:
    """"p=0.003, [+4.1, +9.8]%", "not significant (p=0.41)" or "untested" for the terminal and the gates."""
    if found is None:
        return "untested"
    sides = "" if found.interval_pct is None else ", [" + ", ".join(
        "open" if side is None else f"{side:+.1f}" for side in found.interval_pct) + "]%"
    return (f"p={found.p_value:.3g}{sides}" if found.significant
            else f"not significant (p={found.p_value:.2g}{sides})")
