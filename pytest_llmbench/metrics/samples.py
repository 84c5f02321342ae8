"""How many samples a percentile rests on, and whether that is enough: the one rule every figure follows, shown
(terminal tables, sweep, compare, report) or judged (run SLOs, compare-fail limits, a sweep's knee).

pQ rests on enough samples when, on average, at least one of them lies above it: n >= 100 / (100 - Q), so p50 needs
2, p90 10, p95 20, p99 100 and p99.9 1,000. With fewer, "p99" is an interpolation between the largest few values
(of 8 samples, nearly the maximum). Tables then show "-" beside the sample count; a gate judges the value but says on
how many samples it rests, and warns, or with ``--llmbench-few-samples fail`` fails instead of judging. Issue #30
replaces this rule with confidence intervals: everything asks here, so the rule has one place to change.
"""

from __future__ import annotations

import math
from typing import Any

FEW_SAMPLES = ("warn", "fail")  # what a gate does with a percentile that rests on too few samples
# The percentile statistics of the summary keys (p99_ttft_ms) and the share of values that lies above each.
_PERCENTILES = {"p99_9": 99.9, "median": 50.0, "p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}


def min_samples(stat: str) -> int:
    """The fewest samples the statistic rests on honestly: ``p99`` 100, ``p99.9`` 1,000; 1 for a mean or a max."""
    q = _PERCENTILES.get(stat.replace(".", "_"))
    return 1 if q is None else math.ceil(100.0 / (100.0 - q) - 1e-9)


def _split(key: str) -> tuple[str, str] | None:
    """("p99", "ttft") for the summary key p99_ttft_ms; None for a key that is no percentile of a metric."""
    for stat in _PERCENTILES:  # p99_9 is tried before p99
        if key.startswith(stat + "_"):
            return stat, key[len(stat) + 1:].removesuffix("_ms")
    return None


def count_key(key: str) -> str | None:
    """Where a summary says how many samples the percentile ``key`` rests on: count_ttft for p99_ttft_ms."""
    split = _split(key)
    return None if split is None else f"count_{split[1]}"


def short_of(key: str, count: Any) -> str | None:
    """"p99 of 8 samples, needs 100" when the percentile ``key`` rests on too few; None when it does not, when it is
    no percentile, or when the count is unknown (a batch from before counts were kept) or 0 (no figure at all)."""
    split = _split(key)
    if split is None or not isinstance(count, int) or isinstance(count, bool) or count == 0:
        return None
    need = min_samples(split[0])
    plural = "" if count == 1 else "s"
    return None if count >= need else f"{split[0].replace('_', '.')} of {count} sample{plural}, needs {need}"


def shortfall(key: str, figures: dict[str, Any]) -> str | None:
    """``short_of`` for the percentile ``key`` of ``figures``, a summary with its ``count_<metric>`` keys."""
    where = count_key(key)
    return None if where is None else short_of(key, figures.get(where))


def vouched(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as tables show them: a percentile that rests on too few samples is None (shown as "-")."""
    return {key: None if shortfall(key, figures) else value for key, value in figures.items()}


# The tables' footnote for their "-": "too few samples for the percentile (p90 needs 10, p95 20, p99 100, ...)"
RULE = "too few samples for the percentile (" + ", ".join(
    f"{stat.replace('_', '.')}{' needs' if n == 0 else ''} {min_samples(stat)}"
    for n, stat in enumerate(("p90", "p95", "p99", "p99_9"))) + ")"
