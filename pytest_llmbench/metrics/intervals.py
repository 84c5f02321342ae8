"""Confidence intervals on what a run reports: distribution-free intervals on percentiles, Wilson on shares.

A percentile's interval comes from order statistics (the binomial method): of n independent samples, the number
lying below the true q-th percentile is Binomial(n, q), so the sorted samples x(l) and x(u) enclose it with
probability P(l <= B < u). The ranks start as the outermost whose tails each hold at most (1 - level) / 2, then
drop their less likely end while the coverage stays at least ``level`` (equal tails overshoot where the binomial
is lumpy, near p99), so the interval holds at least ``level`` whatever the latency distribution (no normality, no
bootstrap noise) and not much more. When even the smallest or largest sample cannot serve as a bound, that side
is None: the run has too few samples to bound the percentile there, and every consumer says so through
metrics/samples.py.

A share (goodput, success rate) gets a Wilson score interval: right near 0 and 1, where a normal interval is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

DEFAULT_LEVEL = 0.95  # --llmbench-confidence
_SPREAD = 12.0  # binomial mass beyond this many standard deviations from the mean is below 1e-30: skipped

Interval = tuple[float | None, float | None]


def _log_pmf(n: int, p: float, k: int) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def rank_bounds(n: int, q: float, level: float = DEFAULT_LEVEL) -> tuple[int | None, int | None]:
    """The 1-based ranks (l, u) of the sorted samples that bound the ``q``-th percentile (0-100) of n samples at
    ``level``; either is None when no sample can bound that side (n too small for this percentile and level).

    Only the binomial's bulk (mean +- 12 sd) is summed, so a million ITL gaps cost thousands of steps, not millions.
    """
    if n <= 0:
        return None, None
    p = min(max(q / 100.0, 1e-12), 1.0 - 1e-12)
    tail = (1.0 - level) / 2.0 * (1.0 + 1e-9)  # a tail that equals the level's exactly (0.5^3 at 75 %) counts
    sd = math.sqrt(n * p * (1.0 - p))
    first = max(0, math.floor(n * p - _SPREAD * sd) - 1)
    last = min(n, math.ceil(n * p + _SPREAD * sd) + 1)
    lower: int | None = None
    upper: int | None = None
    cdf = 0.0  # P(B <= k - 1) before step k
    for k in range(first, last + 1):
        # x(k + 1) is a lower bound while P(B <= k) <= tail; x(k + 1) an upper bound once P(B <= k) >= 1 - tail
        cdf += math.exp(_log_pmf(n, p, k))
        if cdf <= tail:
            lower = k + 1
        elif cdf >= 1.0 - tail and k + 1 <= n:
            upper = k + 1
            break
    if lower is not None and lower > n:
        lower = None
    if lower is None or upper is None:
        return lower, upper
    return _tightened(n, p, lower, upper, level)


def _tightened(n: int, p: float, lower: int, upper: int, level: float) -> tuple[int, int]:
    """Equal tails of at most (1 - level) / 2 each overshoot the level when the binomial is lumpy (a p95 of 100
    samples: 98.3 %); drop the less likely end rank while the coverage P(lower <= B < upper) stays >= level."""
    covered = math.fsum(math.exp(_log_pmf(n, p, k)) for k in range(lower, upper))
    while upper - lower > 1:
        low_end, high_end = math.exp(_log_pmf(n, p, lower)), math.exp(_log_pmf(n, p, upper - 1))
        drop = min(low_end, high_end)
        if covered - drop < level:
            break
        covered -= drop
        if low_end <= high_end:
            lower += 1
        else:
            upper -= 1
    return lower, upper


def percentile_interval(ordered: Sequence[float], q: float, level: float = DEFAULT_LEVEL) -> Interval:
    """The ``level`` confidence interval of the ``q``-th percentile of sorted values, each side None when the
    values cannot bound it there."""
    low, high = rank_bounds(len(ordered), q, level)
    return (None if low is None else ordered[low - 1], None if high is None else ordered[high - 1])


def wilson(successes: int, total: int, level: float = DEFAULT_LEVEL) -> Interval:
    """The Wilson score interval of a share of ``successes`` in ``total`` trials; (None, None) without trials."""
    if total <= 0:
        return None, None
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def min_samples(q: float, level: float = DEFAULT_LEVEL) -> int:
    """The fewest samples whose smallest and largest can bound the ``q``-th percentile at ``level``: the percentile
    lies beyond every sample with probability p^n (below: (1-p)^n), which must stay within the tail."""
    tail = (1.0 - level) / 2.0
    p = q / 100.0
    outer = max(p, 1.0 - p)
    return max(1, math.ceil(math.log(tail) / math.log(outer) - 1e-9))
