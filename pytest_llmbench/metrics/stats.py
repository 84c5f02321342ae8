"""Run statistics pooled over every result the controller saw.

Percentiles are computed from all values at once, never averaged across xdist workers: an average of
per-worker p99s is not a p99. To keep a 10,000-test run small, each metric is a flat array of 8-byte
doubles (no Python float objects), and only the slowest few tests are remembered by name.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..batch import SlowTest
from ..result import METRICS, Metric
from .intervals import DEFAULT_LEVEL, percentile_interval, wilson

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
POOLED = tuple(metric for metric in METRICS if metric.pooled)  # what the statistics pool, in the registry's order
BY_KEY = {metric.key: metric for metric in POOLED}
RATE_METRIC = "tokens_per_second"
# The statistic part of the vLLM-style keys: mean_ttft_ms, p99_9_ttft_ms, ...
STATS = ("mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99", "p99_9")
SHARE_KEYS = ("success_rate", "goodput", "evaluation_pass_rate", "schema_valid")
# The percentile statistics among STATS and the percentile each stands for: each gets a "<key>_ci" interval.
# p99_9 comes first: summary keys are matched by prefix in this order (p99_9_ttft_ms is no p99).
PERCENTILE_STATS = {"p99_9": 99.9, "median": 50.0, "p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
CI_SUFFIX = "_ci"  # p99_ttft_ms_ci: [low, high], a side None when the samples cannot bound it (metrics/intervals.py)
NO_GROUP = "(none)"  # the group of results without a category or model

_DESCRIBE_KEYS = ("count", "mean", "min", "max", "stdev", *(f"p{q:g}" for q in PERCENTILES))


def percentile(ordered: Sequence[float], q: float) -> float:
    """numpy's default "linear" method, so figures match vLLM's benchmark scripts (np.percentile)."""
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def describe_sorted(ordered: Sequence[float]) -> dict[str, Any]:
    """count, mean, min, max, sample stdev and percentiles of sorted values; none gives count 0 and None elsewhere."""
    count = len(ordered)
    if count == 0:
        return {"count": 0, **dict.fromkeys(_DESCRIBE_KEYS[1:])}
    mean = math.fsum(ordered) / count
    spread = math.fsum((x - mean) ** 2 for x in ordered) / (count - 1) if count > 1 else 0.0
    out: dict[str, Any] = {
        "count": count,
        "mean": mean,
        "min": ordered[0],
        "max": ordered[-1],
        "stdev": math.sqrt(spread),
    }
    for q in PERCENTILES:
        out[f"p{q:g}"] = percentile(ordered, q)
    return out


def metric_key(stat: str, metric: str) -> str:
    """The vLLM-style summary key: ("p99_9", "ttft") -> "p99_9_ttft_ms"; tokens/s keys carry no unit."""
    known = BY_KEY.get(metric)
    return known.summary_key(stat) if known is not None else f"{stat}_{metric}"


def _scale(metric: Metric) -> float:
    return 1000.0 if metric.seconds else 1.0


def quantiles_key(metric: Metric) -> str:
    """Where the batch's "distributions" keeps a per-chunk metric's quantiles: "itl_ms"."""
    return f"{metric.key}_ms" if metric.seconds else metric.key


def per_request_key(metric: Metric) -> str:
    """A per-chunk metric's mean per request: "mean_itl_per_request_ms"."""
    return f"mean_{metric.key}_per_request" + ("_ms" if metric.seconds else "")


# Every summary key a pooled metric writes (but its count), to the metric: its unit and which way is better.
_KEY_METRIC = {key: metric for metric in POOLED for key in (
    *(metric.summary_key(stat) for stat in STATS), *([per_request_key(metric)] if metric.per_chunk else []))}


def metric_of(key: str) -> Metric | None:
    """The registry's metric whose statistic a summary key is ("p99_ttft_ms" -> ttft); None for other keys."""
    return _KEY_METRIC.get(key)


def _metric_fields(metric: Metric, desc: dict[str, Any], ordered: Sequence[float], level: float) -> dict[str, Any]:
    source = {"mean": "mean", "median": "p50", "std": "stdev", "min": "min", "max": "max", "p99_9": "p99.9"}
    fields: dict[str, Any] = {f"count_{metric.key}": desc["count"]}  # how many values each figure rests on
    scale = _scale(metric)
    for stat in STATS:
        value = desc[source.get(stat, stat)]
        key = metric.summary_key(stat)
        fields[key] = None if value is None else value * scale
        if stat in PERCENTILE_STATS and ordered:
            fields[key + CI_SUFFIX] = [None if side is None else side * scale
                                       for side in percentile_interval(ordered, PERCENTILE_STATS[stat], level)]
    return fields


def _share(part: int, whole: int, level: float) -> list[float | None] | None:
    """A share's Wilson interval as the batch writes it; None without trials."""
    return list(wilson(part, whole, level)) if whole else None


def finite_number(value: Any) -> float | None:
    """A real, finite number from a result or a JSON file; anything else (None, bool, NaN, text) is None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


_RUN = 1 << 16  # values sorted as Python floats at one time


def _sorted_array(values: array[float]) -> array[float]:
    """Sorted copy at 16 bytes a value at most: sorted() on the whole array would briefly turn every
    value into a 32-byte Python float (a 40 MB spike for a million ITL gaps), so sort runs and merge them."""
    for start in range(0, len(values), _RUN):
        values[start : start + _RUN] = array("d", sorted(values[start : start + _RUN]))
    view = memoryview(values)
    return array("d", heapq.merge(*(view[start : start + _RUN] for start in range(0, len(values), _RUN))))


class _Series:
    """One metric's values; replaced by a sorted copy when described, which stays sorted until the next add."""

    __slots__ = ("_sorted", "values")

    def __init__(self) -> None:
        self.values = array("d")
        self._sorted = True

    def add(self, value: float) -> None:
        self.values.append(value)
        self._sorted = False

    def extend(self, values: Iterable[float]) -> None:
        self.values.extend(values)
        self._sorted = False

    def describe(self) -> dict[str, Any]:
        """The statistics; ``values`` is sorted afterwards, for the percentiles' intervals."""
        if not self._sorted:
            self.values = _sorted_array(self.values)
            self._sorted = True
        return describe_sorted(self.values)


class _Mean:
    """A running mean for figures that need nothing else (no percentiles, so no stored values)."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    @property
    def value(self) -> float | None:
        return _ratio(self.total, self.count)


class _Pool:
    """Totals and series for one set of results: the whole run, one category or one model."""

    def __init__(self, pool_chunks: bool, level: float) -> None:
        self.level = level  # of the confidence intervals
        self.total = 0
        self.successful = 0
        self.met_slos = 0
        self.estimated = 0
        self.timing_degraded = 0  # successful results whose token times the client cannot vouch for
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.unknown_prompt_tokens = 0  # successful results whose server sent no prompt count: not 0 tokens
        self.evaluated = 0
        self.evaluations_passed = 0
        self.reasoning = _Mean()
        self.schema_checked = 0  # structured output validity: answers with a json_schema check, and those that passed
        self.schema_passed = 0
        # A per-chunk metric (ITL) pools one value per streamed chunk: the bulk of the memory, so only the run
        # keeps those values; every pool keeps their mean per request.
        self.series = {m.key: _Series() for m in POOLED if pool_chunks or not m.per_chunk}
        self.per_request = {m.key: _Mean() for m in POOLED if m.per_chunk}
        # What add() feeds, looked up once: it runs for every result, in three pools. A timing_degraded result
        # feeds none of the metrics that rest on its tokens' arrival times.
        self._plain = [(m.field, self.series[m.key], m.arrival_timed) for m in POOLED if not m.per_chunk]
        self._chunked = [(m.field, self.per_request[m.key], self.series.get(m.key), m.arrival_timed)
                         for m in POOLED if m.per_chunk]

    def add(self, row: Mapping[str, Any]) -> None:
        self.total += 1
        if row.get("tokens_estimated"):
            self.estimated += 1
        if row.get("reasoning_score") is not None:
            self.reasoning.add(row["reasoning_score"])
        if row.get("schema_valid") is not None:
            self.schema_checked += 1
            self.schema_passed += bool(row["schema_valid"])
        if row.get("evaluation_passed") is not None:
            self.evaluated += 1
            self.evaluations_passed += bool(row["evaluation_passed"])
        if not row.get("success"):
            return
        self.successful += 1
        if row.get("slo_passed") is not False:
            self.met_slos += 1
        self.prompt_tokens += row.get("prompt_tokens") or 0
        self.unknown_prompt_tokens += row.get("prompt_tokens") is None
        self.completion_tokens += row.get("completion_tokens") or 0
        degraded = bool(row.get("timing_degraded"))
        self.timing_degraded += degraded
        for field, series, timed in self._plain:
            value = row.get(field)
            if value is not None and not (degraded and timed):
                series.add(value)
        for field, mean, chunks, timed in self._chunked:
            values = row.get(field)
            if values and not (degraded and timed):
                mean.add(math.fsum(values) / len(values))
                if chunks is not None:
                    chunks.extend(values)

    def fields(self) -> dict[str, Any]:
        latency = self.series["latency"].describe()
        rate = self.series[RATE_METRIC].describe()
        out: dict[str, Any] = {
            "total_tests": self.total,
            "successful_tests": self.successful,
            "failed_tests": self.total - self.successful,
            "success_rate": _ratio(self.successful, self.total),
            "goodput": _ratio(self.met_slos, self.total),
            "average_execution_time": latency["mean"],
            "total_prompt_tokens": self.prompt_tokens,
            "unknown_prompt_tokens": self.unknown_prompt_tokens,
            "total_completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "average_tokens_per_second": rate["mean"],
            "estimated_token_counts": self.estimated,
            "timing_degraded_requests": self.timing_degraded,
            "mean_reasoning_score": self.reasoning.value,
            "evaluation_pass_rate": _ratio(self.evaluations_passed, self.evaluated),
            "confidence_level": self.level,
            "success_rate" + CI_SUFFIX: _share(self.successful, self.total, self.level),
            "goodput" + CI_SUFFIX: _share(self.met_slos, self.total, self.level),
            "evaluation_pass_rate" + CI_SUFFIX: _share(self.evaluations_passed, self.evaluated, self.level),
            "schema_valid": _ratio(self.schema_passed, self.schema_checked),
            "schema_valid" + CI_SUFFIX: _share(self.schema_passed, self.schema_checked, self.level),
        }
        for metric in POOLED:
            if metric.key in self.series:
                series = self.series[metric.key]
                out.update(_metric_fields(metric, series.describe(), series.values, self.level))
            if metric.per_chunk:
                mean = self.per_request[metric.key].value
                out[per_request_key(metric)] = None if mean is None else mean * _scale(metric)
        return out


class StatsAccumulator:
    """Fed one row per finished test on the controller; summarised once (or a few times) at the end.

    goodput is the share of all tests that succeeded and did not miss a per-test SLO (slo_passed is
    not False); with no SLOs defined it equals success_rate. It is a share, not vLLM's requests/s.
    """

    def __init__(self, slowest_kept: int = 10, level: float = DEFAULT_LEVEL) -> None:
        self._level = level  # of the confidence intervals (--llmbench-confidence)
        self._run = _Pool(pool_chunks=True, level=level)
        self._categories: dict[str, _Pool] = {}
        self._models: dict[str, _Pool] = {}
        self._apis: dict[str, _Pool] = {}  # chat, completions, embeddings, rerank: the report groups by API
        self._slowest_kept = slowest_kept
        self._slowest: list[tuple[float, int, str, str, str, bool]] = []  # a min-heap of the slowest seen
        self._seen = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self._run.add(row)
        for groups, name in ((self._categories, row.get("category")), (self._models, row.get("model")),
                             (self._apis, row.get("api_type"))):
            name = name or NO_GROUP
            if name not in groups:
                groups[name] = _Pool(pool_chunks=False, level=self._level)
            groups[name].add(row)
        self._seen += 1
        seconds = finite_number(row.get("execution_time"))
        # A failed request (or a lost test, 0.0 for a time nobody measured) is no candidate: its time says how
        # fast it failed, not how slow the server is.
        if row.get("success") and seconds is not None and seconds > 0 and self._slowest_kept > 0:
            # -seen: among equal times the earlier test stays
            test_id = row.get("test_id", "")
            entry = (seconds, -self._seen, test_id, row.get("label") or test_id, row.get("test_name", ""),
                     bool(row.get("success")))
            if len(self._slowest) < self._slowest_kept:
                heapq.heappush(self._slowest, entry)
            else:
                heapq.heappushpop(self._slowest, entry)

    def summary(self, duration_s: float) -> dict[str, Any]:
        """The run's figures; throughputs divide by the wall time, so they are None when it is 0."""
        out = self._run.fields()
        out["request_throughput"] = _ratio(self._run.successful, duration_s)
        out["output_throughput"] = _ratio(self._run.completion_tokens, duration_s)
        out["duration_s"] = duration_s
        return out

    def by_category(self) -> dict[str, dict[str, Any]]:
        """Per-category figures: as summary() but without wall-time throughputs or pooled ITL."""
        return {name: pool.fields() for name, pool in sorted(self._categories.items())}

    def by_model(self) -> dict[str, dict[str, Any]]:
        """Per-model figures: as summary() but without wall-time throughputs or pooled ITL."""
        return {name: pool.fields() for name, pool in sorted(self._models.items())}

    def by_api(self) -> dict[str, dict[str, Any]]:
        """Per-API figures (the ``api_type`` each request was sent as), like by_category()."""
        return {name: pool.fields() for name, pool in sorted(self._apis.items())}

    def quantiles(self, metric: str = "itl", points: int = 201) -> list[float]:
        """Evenly spaced quantiles (p0 to p100) of a pooled metric, times in ms: the shape of a distribution
        whose values are too many to keep in a file (one ITL gap per streamed chunk), for histograms and CDFs."""
        series = self._run.series.get(metric)
        if series is None or not series.values:
            return []
        series.describe()  # sorts the values in place, once
        ordered, scale = series.values, _scale(BY_KEY[metric])
        return [round(percentile(ordered, 100.0 * i / (points - 1)) * scale, 4) for i in range(points)]

    def slowest(self, n: int = 5) -> list[SlowTest]:
        """The n slowest tests, slowest first (at most slowest_kept of them), each named by its row's label."""
        return [
            {"test_id": test_id, "label": label, "test_name": name, "execution_time": time, "success": success}
            for time, _, test_id, label, name, success in heapq.nlargest(n, self._slowest)
        ]


def summary_keys() -> frozenset[str]:
    """Every figure summary() writes (its intervals aside): what baselines and thresholds may name."""
    return frozenset(key for key in StatsAccumulator().summary(0.0) if not key.endswith(CI_SUFFIX))


def unit_of(key: str) -> str:
    """The unit of a summary key: the registry's for a metric's statistics, else what the key's name says."""
    metric = metric_of(key)
    if metric is not None:
        return metric.unit
    if key.endswith("_ms"):
        return "ms"
    if key in SHARE_KEYS or key.endswith("_share"):
        return "%"
    if key.endswith(RATE_METRIC) or key == "output_throughput":
        return "tok/s"
    if key == "request_throughput":
        return "req/s"
    if key in ("average_execution_time", "duration_s", "wall_time_s"):
        return "s"
    return ""


def format_value(key: str, value: Any, unit: bool = True) -> str:
    """One display rule per summary key, shared by SLO messages and the baseline table."""
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    symbol = unit_of(key)
    if symbol == "%":
        return f"{value * 100:.1f}" + ("%" if unit else "")
    digits = {"s": 3, "req/s": 2, "": 3}.get(symbol, 1)
    text = f"{value:.{digits}f}"
    return f"{text} {symbol}" if unit and symbol else text

