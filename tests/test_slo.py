from __future__ import annotations

from typing import Any

import pytest

from pytest_llmbench.metrics.slo import (
    RUN_METRICS,
    RunSlo,
    check_run_slos,
    check_test_slo,
    parse_run_slo,
    parse_run_slos,
)
from pytest_llmbench.metrics.stats import StatsAccumulator

FAST_STREAMED = {"success": True, "execution_time": 1.2, "ttft": 0.2, "tpot": 0.03, "tokens_per_second": 40.0}
ALL_TEST_SLOS = {"max_latency_s": 5, "max_ttft_s": 0.5, "max_tpot_ms": 50, "min_tokens_per_second": 20}


def test_a_result_within_every_limit_has_no_misses() -> None:
    assert check_test_slo(ALL_TEST_SLOS, FAST_STREAMED) == []
    assert check_test_slo(None, FAST_STREAMED) == []


def test_a_value_equal_to_its_limit_passes() -> None:
    at_limits = {**FAST_STREAMED, "execution_time": 5.0, "ttft": 0.5, "tpot": 0.05, "tokens_per_second": 20.0}
    assert check_test_slo(ALL_TEST_SLOS, at_limits) == []


@pytest.mark.parametrize(
    ("slo", "override", "metric", "measured", "message"),
    [
        ({"max_ttft_s": 0.5}, {"ttft": 0.812}, "ttft", 0.812, "ttft 0.812 s > max_ttft_s 0.5 s"),
        ({"max_latency_s": 5}, {"execution_time": 7.25}, "latency", 7.25, "latency 7.250 s > max_latency_s 5 s"),
        ({"max_tpot_ms": 50}, {"tpot": 0.0621}, "tpot", 62.1, "tpot 62.1 ms > max_tpot_ms 50 ms"),
        ({"min_tokens_per_second": 20}, {"tokens_per_second": 12.34}, "tokens_per_second", 12.34,
         "tokens_per_second 12.3 tok/s < min_tokens_per_second 20 tok/s"),
    ],
)
def test_each_test_slo_reports_its_miss(slo: Any, override: Any, metric: Any, measured: Any, message: Any) -> None:
    (miss,) = check_test_slo(slo, {**FAST_STREAMED, **override})
    assert (miss.metric, miss.message) == (metric, message)
    assert miss.measured == pytest.approx(measured)
    assert miss.limit == next(iter(slo.values()))
    assert miss.to_dict()["message"] == message


def test_ttft_limit_without_streaming_is_a_miss_that_says_how_to_measure() -> None:
    unstreamed = {"success": True, "execution_time": 1.0, "ttft": None, "tpot": None, "tokens_per_second": 30.0}
    misses = check_test_slo({"max_ttft_s": 0.5, "max_tpot_ms": 50, "max_latency_s": 2}, unstreamed)
    assert [m.metric for m in misses] == ["ttft", "tpot"]
    assert all(m.measured is None for m in misses)
    assert "ttft not measured" in misses[0].message
    assert "--llmbench-stream" in misses[0].message


def test_unknown_or_non_numeric_test_slo_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown SLO key 'max_ttft'.*max_ttft_s"):
        check_test_slo({"max_ttft": 0.5}, FAST_STREAMED)
    with pytest.raises(ValueError, match="max_ttft_s must be a non-negative number"):
        check_test_slo({"max_ttft_s": "fast"}, FAST_STREAMED)
    with pytest.raises(ValueError, match="non-negative"):
        check_test_slo({"max_latency_s": True}, FAST_STREAMED)


@pytest.mark.parametrize(
    ("spec", "key", "op", "limit"),
    [
        ("ttft_p99=500ms", "p99_ttft_ms", "<=", 500.0),
        ("ttft_p99=0.5s", "p99_ttft_ms", "<=", 500.0),
        ("latency_p99.9=2s", "p99_9_latency_ms", "<=", 2000.0),
        ("latency_p95 = 1500 ms", "p95_latency_ms", "<=", 1500.0),
        ("tpot_mean=40ms", "mean_tpot_ms", "<=", 40.0),
        ("itl_median=30ms", "median_itl_ms", "<=", 30.0),
        ("itl_p90=.03s", "p90_itl_ms", "<=", 30.0),
        ("e2el_max=10s", "max_e2el_ms", "<=", 10000.0),
        ("latency_min=1ms", "min_latency_ms", "<=", 1.0),
        ("tokens_per_second_p50=20", "p50_tokens_per_second", ">=", 20.0),
        ("tokens_per_second_min=5", "min_tokens_per_second", ">=", 5.0),
        ("success_rate=0.95", "success_rate", ">=", 0.95),
        ("success_rate=95%", "success_rate", ">=", 0.95),
        ("goodput=90%", "goodput", ">=", 0.9),
        ("request_throughput=2", "request_throughput", ">=", 2.0),
        ("output_throughput=150.5", "output_throughput", ">=", 150.5),
        ("p99_ttft_ms=500", "p99_ttft_ms", "<=", 500.0),
        ("p99_ttft_ms=0.5s", "p99_ttft_ms", "<=", 500.0),
        ("mean_tokens_per_second=30", "mean_tokens_per_second", ">=", 30.0),
    ],
)
def test_run_slo_specs_parse_to_summary_keys(spec: Any, key: Any, op: Any, limit: Any) -> None:
    slo = parse_run_slo(spec)
    assert (slo.key, slo.op) == (key, op)
    assert slo.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("ttft_p99=500", "a time needs a unit: ms or s"),
        ("ttft_p99=500us", "not a time unit"),
        ("foo_p99=5ms", "unknown metric and statistic 'foo_p99'"),
        ("ttft_p42=5ms", "unknown metric and statistic 'ttft_p42'"),
        ("success_rate_p99=0.9", "unknown metric and statistic"),
        ("success_rate=95", "a share between 0 and 1"),
        ("success_rate=95ms", "is a share"),
        ("tokens_per_second_p50=20ms", "takes a plain number"),
        ("ttft_p99", "expected one '='"),
        ("=5ms", "expected one '='"),
        ("ttft_p99=fast", "not a non-negative number"),
        ("ttft_p99=-5ms", "not a non-negative number"),
    ],
)
def test_bad_run_slo_specs_explain_and_list_valid_metrics(spec: Any, why: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_run_slo(spec)
    message = str(info.value)
    assert why in message
    assert repr(spec) in message
    assert ", ".join(RUN_METRICS) in message


def test_misspelt_run_slo_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="did you mean ttft_p99"):
        parse_run_slo("tfft_p99=500ms")


def test_several_run_slos_in_one_option_value() -> None:
    slos = parse_run_slos(["ttft_p99=500ms,success_rate=99%", "latency_p50=1s"])
    assert [s.key for s in slos] == ["p99_ttft_ms", "success_rate", "p50_latency_ms"]


def summary_of(rows: list[dict[str, Any]], wall_time_s: float = 10.0) -> dict[str, Any]:
    acc = StatsAccumulator()
    for row in rows:
        acc.add(row)
    return acc.summary(wall_time_s)


def test_run_slo_miss_reports_the_measured_statistic() -> None:
    summary = summary_of([{"success": True, "execution_time": 1.0, "ttft": 0.8123}])
    (miss,) = check_run_slos([parse_run_slo("ttft_p99=500ms")], summary)
    # one sample bounds a p99 from below (it lies under the p99 with probability 0.99, beyond the 2.5% tail)
    assert miss.message == ("run SLO ttft_p99 <= 500 ms missed: measured 812.3 ms, 95% interval [812.3, open] ms of "
                            "1 sample")
    assert (miss.metric, miss.limit) == ("p99_ttft_ms", 500.0)
    assert miss.measured == pytest.approx(812.3)


def test_run_slos_that_hold_pass() -> None:
    summary = summary_of([{"success": True, "execution_time": 0.4, "ttft": 0.1, "tokens_per_second": 50.0}])
    slos = parse_run_slos(["ttft_p99=500ms", "latency_max=0.5s", "tokens_per_second_mean=40", "success_rate=1"])
    assert check_run_slos(slos, summary) == []


def test_minimum_run_slos_fail_below_their_limit() -> None:
    summary = summary_of([{"success": True, "execution_time": 1.0}, {"success": False, "execution_time": 1.0}])
    misses = check_run_slos(parse_run_slos(["success_rate=95%", "request_throughput=1"]), summary)
    assert [m.message for m in misses] == [
        "run SLO success_rate >= 95% missed: measured 50.0%, 95% interval [9.5, 90.5]% of 2 requests",
        "run SLO request_throughput >= 1 req/s missed: measured 0.10 req/s",
    ]


def test_run_slo_on_an_unmeasured_metric_fails_and_says_to_stream() -> None:
    summary = summary_of([{"success": True, "execution_time": 1.0, "ttft": None}])
    (miss,) = check_run_slos([RunSlo("ttft_p99", "p99_ttft_ms", "<=", 500.0)], summary)
    assert miss.measured is None
    assert miss.message.startswith("run SLO ttft_p99 <= 500 ms missed: not measured")
    assert "--llmbench-stream" in miss.message


@pytest.mark.parametrize(("spec", "summary", "missed"), [
    ("ttft_p99=500ms", {"p99_ttft_ms": 500.0}, False),  # at the limit: met
    ("ttft_p99=500ms", {"p99_ttft_ms": 500.001}, True),
    ("success_rate=95%", {"success_rate": 0.95}, False),  # at the floor: met
    ("success_rate=95%", {"success_rate": 0.9499}, True),
], ids=["max-equal", "max-above", "min-equal", "min-below"])
def test_a_run_slo_is_met_exactly_at_its_limit(spec: Any, summary: Any, missed: Any) -> None:
    assert bool(check_run_slos([parse_run_slo(spec)], summary)) is missed
