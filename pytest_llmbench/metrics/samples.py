"""How many samples a percentile rests on, and whether they can bound it: the one rule every figure follows, shown
(terminal tables, sweep, compare, report) or judged (run SLOs, compare-fail limits, a sweep's knee).

pQ rests on enough samples when its distribution-free confidence interval (metrics/intervals.py) is bounded on both
sides: the smallest and largest sample must each enclose the percentile with the interval's level, so at 95 % p50
needs 6 samples, p90 36, p95 72, p99 368 and p99.9 3,688. With fewer, "p99" is an interpolation between the largest
few values and the truth may lie anywhere above them. Tables then show "-" beside the sample count; a run SLO is
judged on the interval (pass, fail or undecided), and a compare-fail limit warns, or with
``--llmbench-few-samples fail`` fails instead of judging. Everything asks here, so the rule has one place to change.
"""

from __future__ import annotations

from typing import Any

from .intervals import DEFAULT_LEVEL
from .intervals import min_samples as _bound_needs
from .stats import CI_SUFFIX, PERCENTILE_STATS, finite_number, format_value, unit_of

FEW_SAMPLES = ("warn", "fail")  # what a compare-fail limit does with a percentile that rests on too few samples


def min_samples(stat: str, level: float = DEFAULT_LEVEL) -> int:
    """The fewest samples that bound the statistic at ``level``: ``p99`` 368 at 95 %; 1 for a mean or a max."""
    q = PERCENTILE_STATS.get(stat.replace(".", "_"))
    return 1 if q is None else _bound_needs(q, level)


def split_key(key: str) -> tuple[str, str] | None:
    """("p99", "ttft") for the summary key p99_ttft_ms; None for a key that is no percentile of a metric."""
    for stat in PERCENTILE_STATS:  # p99_9 is tried before p99
        if key.startswith(stat + "_"):
            return stat, key[len(stat) + 1:].removesuffix("_ms")
    return None


def count_key(key: str) -> str | None:
    """Where a summary says how many samples the percentile ``key`` rests on: count_ttft for p99_ttft_ms."""
    split = split_key(key)
    return None if split is None else f"count_{split[1]}"


def short_of(key: str, count: Any, level: Any = DEFAULT_LEVEL) -> str | None:
    """"p99 of 8 samples, needs 368 for 95%" when the percentile ``key`` rests on too few to bound it; None when it
    does not, when it is no percentile, or when the count is unknown (a batch from before counts were kept) or 0
    (no figure at all)."""
    split = split_key(key)
    if split is None or not isinstance(count, int) or isinstance(count, bool) or count == 0:
        return None
    level = level_of({"confidence_level": level})
    need = min_samples(split[0], level)
    plural = "" if count == 1 else "s"
    return None if count >= need else \
        f"{split[0].replace('_', '.')} of {count} sample{plural}, needs {need} for {level * 100:g}%"


def level_of(figures: dict[str, Any]) -> float:
    """The confidence level the figures' intervals were drawn at; the default for a batch from before they were."""
    level = figures.get("confidence_level")
    return level if isinstance(level, float) and 0.5 <= level < 1.0 else DEFAULT_LEVEL


def shortfall(key: str, figures: dict[str, Any]) -> str | None:
    """``short_of`` for the percentile ``key`` of ``figures``, a summary with its ``count_<metric>`` keys."""
    where = count_key(key)
    return None if where is None else short_of(key, figures.get(where), level_of(figures))


def vouched(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures as tables show them: a percentile that rests on too few samples is None (shown as "-")."""
    return {key: None if shortfall(key, figures) else value for key, value in figures.items()}


def rule(figures: dict[str, Any]) -> str:
    """The tables' footnote for their "-": "too few samples to bound the percentile at 95% (p90 needs 36, ...)"."""
    level = level_of(figures)
    return f"too few samples to bound the percentile at {level * 100:g}% (" + ", ".join(
        f"{stat.replace('_', '.')}{' needs' if n == 0 else ''} {min_samples(stat, level)}"
        for n, stat in enumerate(("p90", "p95", "p99", "p99_9"))) + ")"


def interval_of(key: str, figures: dict[str, Any]) -> tuple[float | None, float | None] | None:
    """The figure's confidence interval (``p99_ttft_ms_ci``), a side None where the samples cannot bound it; None
    when the figure carries none (a mean, a throughput, a batch from before intervals were kept)."""
    ci = figures.get(key + CI_SUFFIX)
    if not isinstance(ci, list) or len(ci) != 2:
        return None
    low, high = (finite_number(side) for side in ci)
    return low, high


def interval_text(key: str, figures: dict[str, Any]) -> str:
    """"95% interval [772.0, 851.0] ms" ("open" for a side the samples cannot bound); "" without an interval."""
    ci = interval_of(key, figures)
    if ci is None:
        return ""
    sides = ", ".join("open" if side is None else format_value(key, side, unit=False) for side in ci)
    unit = unit_of(key)
    return f"{level_of(figures) * 100:g}% interval [{sides}]{unit if unit in ('%', '') else ' ' + unit}"
