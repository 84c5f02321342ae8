from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench.metrics.baseline import (
    DEFAULT_METRICS,
    Delta,
    Threshold,
    check_regressions,
    compare,
    format_table,
    load_baseline,
    metrics_to_compare,
    parse_threshold,
)
from pytest_llmbench.metrics.stats import StatsAccumulator


def aggregate_of(latencies: list[float], tokens_per_second: float) -> dict[str, Any]:
    acc = StatsAccumulator()
    for seconds in latencies:
        acc.add({"success": True, "execution_time": seconds, "completion_tokens": 50,
                 "tokens_per_second": tokens_per_second})
    return acc.summary(10.0)


def write_batch(path: Any, aggregate: Any) -> None:
    path.write_text(json.dumps({"schema_version": 1, "aggregate": aggregate, "categories": {}, "models": {}}))


def test_baseline_file_round_trips_the_aggregate(tmp_path: Path) -> None:
    aggregate = aggregate_of([0.1, 0.12, 0.14], 40.0)
    path = tmp_path / "batch_results_1.json"
    write_batch(path, aggregate)
    assert load_baseline(path)["aggregate"] == aggregate


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "does not exist"),
        ("{not json", "not JSON: Expecting property name"),
        (b"\xff\xfe\x00garbage", "not JSON: not UTF-8 text"),
        ('{"tests": []}', 'no "aggregate" object'),
        ('{"aggregate": [1, 2]}', r"aggregate: \[1, 2\] is not an object"),
        ("[]", "not an llmbench batch file"),
    ],
)
def test_unusable_baseline_file_is_named_in_the_error(tmp_path: Path, content: Any, why: Any) -> None:
    path = tmp_path / "old_batch.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=why) as info:
        load_baseline(path)
    assert str(path) in str(info.value)


def test_compare_gives_percent_change_per_metric() -> None:
    baseline = {"p50_latency_ms": 120.0, "mean_tokens_per_second": 40.0, "failed_tests": 0, "p99_ttft_ms": None}
    current = {"p50_latency_ms": 137.0, "mean_tokens_per_second": 37.0, "failed_tests": 3, "p99_ttft_ms": 90.0}
    deltas = compare(baseline, current, ["p50_latency_ms", "mean_tokens_per_second", "failed_tests", "p99_ttft_ms"])
    assert [d.name for d in deltas] == ["p50_latency_ms", "mean_tokens_per_second", "failed_tests", "p99_ttft_ms"]
    assert deltas[0].change_pct == pytest.approx(14.1667, rel=1e-4)
    assert deltas[1].change_pct == pytest.approx(-7.5)
    assert deltas[2] == Delta("failed_tests", 0, 3, None)
    assert deltas[3] == Delta("p99_ttft_ms", None, 90.0, None)


def test_compare_defaults_to_the_watched_metrics() -> None:
    aggregate = aggregate_of([0.1, 0.2], 40.0)
    assert [d.name for d in compare(aggregate, aggregate)] == list(DEFAULT_METRICS)
    expected = {name: None if aggregate.get(name) is None else 0.0 for name in DEFAULT_METRICS}
    assert {d.name: d.change_pct for d in compare(aggregate, aggregate)} == expected
    assert 0.0 in expected.values()  # some metric was measured and compared


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("p50_latency_ms:10%", Threshold("p50_latency_ms", 10.0)),
        ("mean_tokens_per_second:-5%", Threshold("mean_tokens_per_second", -5.0)),
        ("p99_ttft_ms:2.5", Threshold("p99_ttft_ms", 2.5)),
        (" success_rate : -1% ", Threshold("success_rate", -1.0)),
    ],
)
def test_thresholds_parse_with_their_direction(spec: Any, expected: Any) -> None:
    assert parse_threshold(spec) == expected


def test_unknown_threshold_metric_lists_close_matches() -> None:
    with pytest.raises(ValueError, match="unknown metric 'p50_latency'; close matches: p50_latency_ms"):
        parse_threshold("p50_latency:10%")


@pytest.mark.parametrize("spec", ["p50_latency_ms", "p50_latency_ms:", "p50_latency_ms:fast", "p50_latency_ms:0%",
                                  ":10%"])
def test_malformed_thresholds_are_rejected(spec: Any) -> None:
    with pytest.raises(ValueError, match="invalid threshold"):
        parse_threshold(spec)


def test_latency_regression_past_its_limit_fails_from_real_baseline_file(tmp_path: Path) -> None:
    path = tmp_path / "batch_results_old.json"
    write_batch(path, aggregate_of([0.12, 0.12, 0.12], 40.0))
    current = aggregate_of([0.137, 0.137, 0.137], 37.0)
    thresholds = [parse_threshold("p50_latency_ms:10%"), parse_threshold("mean_tokens_per_second:-5%")]
    deltas = compare(load_baseline(path)["aggregate"], current, metrics_to_compare(thresholds))
    assert check_regressions(deltas, thresholds) == [
        "p50_latency_ms regressed 14.2% (120.0 -> 137.0 ms), limit +10%",
        "mean_tokens_per_second regressed -7.5% (40.0 -> 37.0 tok/s), limit -5%",
    ]


def test_changes_within_limits_and_improvements_pass() -> None:
    baseline = aggregate_of([0.12, 0.12], 40.0)
    current = aggregate_of([0.125, 0.125], 45.0)  # latency +4.2%, throughput better
    thresholds = [parse_threshold("p50_latency_ms:10%"), parse_threshold("mean_tokens_per_second:-5%"),
                  parse_threshold("p99_latency_ms:5%")]
    assert check_regressions(compare(baseline, current, metrics_to_compare(thresholds)), thresholds) == []


def test_a_rise_from_a_zero_baseline_is_a_regression() -> None:
    thresholds = [Threshold("failed_tests", 50.0)]
    deltas = compare({"failed_tests": 0}, {"failed_tests": 2}, ["failed_tests"])
    assert check_regressions(deltas, thresholds) == ["failed_tests regressed from zero (0 -> 2), limit +50%"]
    still_zero = compare({"failed_tests": 0}, {"failed_tests": 0}, ["failed_tests"])
    assert check_regressions(still_zero, thresholds) == []


def test_a_gated_metric_missing_on_one_side_fails_instead_of_passing() -> None:
    thresholds = [Threshold("p99_ttft_ms", 10.0)]
    deltas = compare({"p99_ttft_ms": 200.0}, {"p99_ttft_ms": None}, ["p99_ttft_ms"])
    (failure,) = check_regressions(deltas, thresholds)
    assert failure == "p99_ttft_ms could not be compared (200.0 -> n/a): not measured in this run, limit +10%"


def test_a_threshold_on_a_metric_left_out_of_compare_is_an_error() -> None:
    with pytest.raises(ValueError, match="p99_9_tpot_ms was not compared"):
        check_regressions(compare({}, {}), [Threshold("p99_9_tpot_ms", 10.0)])


def test_table_lines_show_baseline_now_and_change() -> None:
    deltas = [Delta("p50_latency_ms", 120.0, 137.0, 14.1667), Delta("success_rate", 1.0, 0.9, -10.0),
              Delta("p99_ttft_ms", None, 90.0, None)]
    lines = format_table(deltas)
    assert lines[0].split() == ["metric", "baseline", "now", "change", "significance"]
    # untested (no rows): judged on the figures alone, as before significance came
    assert lines[1].split() == ["p50_latency_ms", "120.0", "ms", "137.0", "ms", "+14.2%", "worse"]
    assert lines[2].split() == ["success_rate", "100.0%", "90.0%", "-10.0%", "worse"]
    assert lines[3].split() == ["p99_ttft_ms", "n/a", "90.0", "ms", "n/a"]
    assert len({len(line) for line in lines}) == 1  # columns line up
