"""SLO gates: per-test limits from the suite JSON and run-wide limits on the summary statistics.

A limit on a metric that was not measured (ttft without streaming) is a miss that says how to measure
it: a gate that passes because nothing was checked would hide exactly what it is there to catch.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..batch import SloMissEntry
from ..result import METRICS, Metric
from .samples import count_key, interval_of, interval_text
from .server.section import SLO_KEYS as SERVER_SLO_KEYS
from .stats import POOLED, finite_number, format_value, metric_of, unit_of

STREAM_HINT = 'measured only on streamed responses: run with --llmbench-stream or set "stream": true on the test'
# Why a streamed answer has no TTFT or TPOT: streaming is on, so the hint above would send the reader the wrong way.
STREAMED_BUT_EMPTY = {"ttft": "the stream carried no content: an empty answer has no first token",
                      "tpot": "the stream carried fewer than two tokens: there is no time between tokens"}


@dataclass(frozen=True)
class SloMiss:
    metric: str  # "ttft" for a per-test SLO, the summary key ("p99_ttft_ms") for a run SLO
    limit: float
    measured: float | None  # None when the metric was not measured
    message: str

    def to_dict(self) -> SloMissEntry:
        return SloMissEntry(metric=self.metric, limit=self.limit, measured=self.measured, message=self.message)


@dataclass(frozen=True)
class _TestGate:
    field: str  # the result's field, in seconds or the metric's own unit
    metric: str
    scale: float  # result units -> the limit's units
    unit: str
    maximum: bool
    unmeasured: str  # why a value can be missing


def _test_gate(metric: Metric, key: str) -> _TestGate:
    """A per-test limit from the registry: a time in seconds (``max_ttft_s``) or ms (``max_tpot_ms``), any other
    figure in the metric's own unit; a maximum when lower is better."""
    scale, unit = 1.0, metric.unit
    if metric.seconds:
        scale, unit = (1000.0, "ms") if key.endswith("_ms") else (1.0, "s")
    return _TestGate(metric.field, metric.key, scale, unit, metric.better == "lower",
                     STREAM_HINT if metric.streamed else metric.unmeasured)


_TEST_GATES = {metric.test_slo: _test_gate(metric, metric.test_slo) for metric in METRICS if metric.test_slo}
TEST_SLO_KEYS = tuple(_TEST_GATES)


def validate_test_slo(slo: dict[str, Any]) -> None:
    """Raise ValueError for unknown keys or non-numeric limits (suite loading can call this early)."""
    for key, limit in slo.items():
        if key not in _TEST_GATES:
            raise ValueError(f"unknown SLO key {key!r}; valid keys: {', '.join(TEST_SLO_KEYS)}")
        if finite_number(limit) is None or limit < 0:
            raise ValueError(f"SLO {key} must be a non-negative number, got {limit!r}")


def check_test_slo(slo: dict[str, Any] | None, result: dict[str, Any]) -> list[SloMiss]:
    """Every limit the result missed; result is a TestResult.to_dict() or a controller row."""
    if not slo:
        return []
    validate_test_slo(slo)
    misses = []
    for key, limit in slo.items():
        gate = _TEST_GATES[key]
        limit_text = f"{key} {limit:g} {gate.unit}"
        raw = result.get(gate.field)
        if raw is None:
            why = STREAMED_BUT_EMPTY.get(gate.metric, gate.unmeasured) if result.get("stream") else gate.unmeasured
            message = f"{gate.metric} not measured, so {limit_text} could not be checked ({why})"
            misses.append(SloMiss(gate.metric, limit, None, message))
            continue
        measured = raw * gate.scale
        if (measured > limit) if gate.maximum else (measured < limit):
            shown = f"{measured:.3f}" if gate.unit == "s" else f"{measured:.1f}"
            sign = ">" if gate.maximum else "<"
            message = f"{gate.metric} {shown} {gate.unit} {sign} {limit_text}"
            misses.append(SloMiss(gate.metric, limit, measured, message))
    return misses


# --- run-wide SLOs -------------------------------------------------------------------------------

RUN_STATS = ("mean", "median", "p50", "p90", "p95", "p99", "p99.9", "max", "min")
SCALAR_METRICS = ("success_rate", "goodput", "schema_valid", "request_throughput", "output_throughput")
RUN_METRICS = (*(metric.key for metric in POOLED), *SCALAR_METRICS)
_RUN_KEYS = {
    **{f"{metric.key}_{stat}": metric.summary_key(stat.replace(".", "_")) for metric in POOLED for stat in RUN_STATS},
    **{metric: metric for metric in SCALAR_METRICS},
    **SERVER_SLO_KEYS,  # the servers' /metrics: kv_cache_usage_max=90%, preemptions_total=0
}
_GATED_KEYS = frozenset(_RUN_KEYS.values())
RUN_NAMES = tuple(_RUN_KEYS)  # the documented spellings: ttft_p99, latency_mean, success_rate, ...
_VALUE = re.compile(r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(?P<unit>[a-z%/]*)")
_SYNTAX = (
    f"write <metric>_<stat>=<value><unit> with metric one of {', '.join(RUN_METRICS)} and stat one of "
    f"{', '.join(RUN_STATS)} ({', '.join(SCALAR_METRICS)} take no stat), e.g. ttft_p99=500ms, "
    "latency_p95=2s, success_rate=0.95, or a summary key such as p99_ttft_ms=500; on the server's metrics: "
    f"{', '.join(SERVER_SLO_KEYS)} (e.g. kv_cache_usage_max=90%, preemptions_total=0)"
)
_SERVER_HINT = "no server metrics were read: see --llmbench-server-metrics"


def summary_key(name: str) -> str | None:
    """The summary key a gate's metric name stands for: ``ttft_p99`` (the documented spelling) or the key itself
    (``p99_ttft_ms``); None for a name that is neither. SLOs and baseline thresholds both read names this way."""
    if name in _RUN_KEYS:
        return _RUN_KEYS[name]
    return name if name in _GATED_KEYS else None


@dataclass(frozen=True)
class RunSlo:
    name: str  # as written: "ttft_p99" or "p99_ttft_ms"
    key: str  # the summary key it gates
    op: str  # "<=" for times, ">=" for rates and throughputs
    limit: float  # in the summary key's units (ms for times, a fraction for shares)

    @property
    def text(self) -> str:
        limit = f"{self.limit * 100:g}%" if unit_of(self.key) == "%" else f"{self.limit:g} {unit_of(self.key)}"
        return f"{self.name} {self.op} {limit.strip()}"


def _invalid(spec: str, why: str) -> ValueError:
    return ValueError(f"invalid run SLO {spec!r}: {why}; {_SYNTAX}")


def parse_run_slo(spec: str) -> RunSlo:
    name, sep, value_text = (part.strip() for part in spec.partition("="))
    if not sep or not name or not value_text:
        raise _invalid(spec, "expected one '='")
    key = summary_key(name)
    if key is None:
        close = difflib.get_close_matches(name, [*_RUN_KEYS, *_GATED_KEYS], n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise _invalid(spec, f"unknown metric and statistic {name!r}{hint}")
    match = _VALUE.fullmatch(value_text.lower())
    if not match:
        raise _invalid(spec, f"{value_text!r} is not a non-negative number with an optional unit")
    metric = metric_of(key)
    upper = metric.better == "lower" if metric is not None else key in SERVER_SLO_KEYS.values()
    return RunSlo(name, key, "<=" if upper else ">=", _limit(spec, key, name, match))


def _limit(spec: str, key: str, name: str, match: re.Match[str]) -> float:
    value, unit = float(match["number"]), match["unit"]
    metric = metric_of(key)
    if metric.seconds if metric is not None else key.endswith("_ms"):
        if not unit and name != key:
            raise _invalid(spec, "a time needs a unit: ms or s")
        if unit not in ("", "ms", "s"):
            raise _invalid(spec, f"unit {unit!r} is not a time unit (ms or s)")
        return value * 1000.0 if unit == "s" else value
    if unit_of(key) == "%":
        if unit not in ("", "%"):
            raise _invalid(spec, f"{key} is a share: write 0.95 or 95%, not {unit!r}")
        share = value / 100.0 if unit == "%" else value
        if share > 1:
            raise _invalid(spec, f"{key} is a share between 0 and 1: write 0.95 or 95%")
        return share
    if unit:
        raise _invalid(spec, f"{key} takes a plain number, not the unit {unit!r}")
    return value


def parse_run_slos(specs: Iterable[str]) -> list[RunSlo]:
    """Options may repeat and each may hold several comma-separated SLOs."""
    return [parse_run_slo(part) for spec in specs for part in spec.split(",") if part.strip()]


UNDECIDED = ("warn", "pass", "fail")  # --llmbench-slo-undecided: what an SLO its interval straddles does


def verdict(slo: RunSlo, summary: dict[str, Any]) -> str:
    """"pass", "fail" or "undecided" (the interval straddles the limit, or is open on the side that would decide
    it); a figure without an interval (a mean, a throughput) passes or fails on its value; "unmeasured"."""
    measured = finite_number(summary.get(slo.key))
    if measured is None:
        return "unmeasured"
    ci = interval_of(slo.key, summary)
    if ci is None:
        return "pass" if (measured <= slo.limit if slo.op == "<=" else measured >= slo.limit) else "fail"
    low, high = ci if slo.op == "<=" else (None if ci[1] is None else -ci[1], None if ci[0] is None else -ci[0])
    limit = slo.limit if slo.op == "<=" else -slo.limit  # ">=" judged as "<=" on the negated figure
    if high is not None and high <= limit:
        return "pass"
    if low is not None and low > limit:
        return "fail"
    return "undecided"


def measured_text(slo: RunSlo, summary: dict[str, Any]) -> str:
    """"812.0 ms, 95% interval [772.0, 851.0] ms of 412 samples": the figure, what bounds it and on how much."""
    measured = format_value(slo.key, summary.get(slo.key))
    bounds = interval_text(slo.key, summary)
    if not bounds:
        return measured
    counted = count_key(slo.key)
    count, what = (summary.get(counted), "sample") if counted else (summary.get("total_tests"), "request")
    return f"{measured}, {bounds} of {count} {what}{'' if count == 1 else 's'}"


def check_run_slos(slos: Iterable[RunSlo], summary: dict[str, Any], undecided: str = "warn") -> list[SloMiss]:
    """The SLOs ``summary`` misses, each judged on its confidence interval (metrics/intervals.py): a miss when the
    interval lies wholly beyond the limit, and, with ``undecided="fail"``, when it straddles it."""
    misses = []
    for slo in slos:
        measured = finite_number(summary.get(slo.key))
        judged = verdict(slo, summary)
        if judged == "unmeasured":
            metric = metric_of(slo.key)
            why = STREAM_HINT if metric is not None and metric.streamed else \
                "no successful request or no wall time to measure it"
            why = _SERVER_HINT if slo.key in SERVER_SLO_KEYS.values() else why
            message = f"run SLO {slo.text} missed: not measured ({why})"
        elif judged == "fail":
            message = f"run SLO {slo.text} missed: measured {measured_text(slo, summary)}"
        elif judged == "undecided" and undecided == "fail":
            message = (f"run SLO {slo.text} undecided: measured {measured_text(slo, summary)}"
                       " (--llmbench-slo-undecided fail)")
        else:
            continue
        misses.append(SloMiss(slo.key, slo.limit, measured, message))
    return misses


def undecided_warnings(slos: Iterable[RunSlo], summary: dict[str, Any]) -> list[str]:
    """One line per SLO whose interval straddles its limit: neither met nor missed with confidence."""
    return [f"run SLO {slo.text} undecided: measured {measured_text(slo, summary)}" for slo in slos
            if verdict(slo, summary) == "undecided"]
