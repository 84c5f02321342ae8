from __future__ import annotations

import math
import random
import statistics
import tracemalloc
from typing import Any

import pytest

from pytest_llmbench.metrics.stats import (
    NO_GROUP,
    StatsAccumulator,
    describe_sorted,
    format_value,
    percentile,
    summary_keys,
)


def reference_percentile(values: list[float], q: float) -> float:
    """numpy's "linear" method written out independently: rank (n-1)q, interpolate between neighbours."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = int(position)
    if below + 1 >= len(ordered):
        return ordered[-1]
    return ordered[below] * (1 - (position - below)) + ordered[below + 1] * (position - below)


def make_row(index: int, rng: random.Random, **overrides: Any) -> dict[str, Any]:
    streamed = index % 3 != 0
    row = {
        "test_id": f"t{index}",
        "test_name": f"test {index}",
        "category": ("math", "code", None)[index % 3],
        "model": ("small", "large")[index % 2],
        "success": index % 7 != 0,
        "execution_time": rng.uniform(0.1, 5.0),
        "prompt_tokens": rng.randint(5, 50),
        "completion_tokens": rng.randint(10, 200),
        "tokens_per_second": rng.uniform(5, 80),
        "tokens_estimated": index % 5 == 0,
        "error_message": None,
        "attempts": 1,
        "reasoning_score": rng.random() if index % 2 else None,
        "evaluation_passed": (index % 4 != 0) if index % 2 else None,
        "ttft": rng.uniform(0.01, 1.0) if streamed else None,
        "tpot": rng.uniform(0.005, 0.1) if streamed else None,
        "e2e_latency": rng.uniform(0.2, 6.0) if streamed else None,
        "itl": [rng.uniform(0.001, 0.2) for _ in range(rng.randint(1, 6))] if streamed else [],
        "slo_passed": None,
    }
    row.update(overrides)
    return row


def accumulate(rows: list[dict[str, Any]]) -> StatsAccumulator:
    acc = StatsAccumulator()
    for row in rows:
        acc.add(row)
    return acc


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    rng = random.Random(1234)
    return [make_row(i, rng) for i in range(300)]


def test_percentiles_match_numpy_linear_on_known_values() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert percentile([10.0, 20.0], 99.9) == pytest.approx(19.99)
    assert percentile([7.0], 99) == 7.0


def test_describe_matches_independent_reference_and_statistics_module() -> None:
    values = [random.Random(5).expovariate(2.0) for _ in range(997)]
    desc = describe_sorted(sorted(values))
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    assert desc["count"] == 997
    assert desc["mean"] == pytest.approx(statistics.fmean(values))
    assert desc["stdev"] == pytest.approx(statistics.stdev(values))
    assert (desc["min"], desc["max"]) == (min(values), max(values))
    for key, q, cut in (("p50", 50, 499), ("p90", 90, 899), ("p95", 95, 949), ("p99", 99, 989), ("p99.9", 99.9, 998)):
        assert desc[key] == pytest.approx(reference_percentile(values, q))
        assert desc[key] == pytest.approx(cuts[cut])


def test_describe_of_one_value_has_zero_stdev_and_empty_has_none() -> None:
    assert describe_sorted([0.25]) == {"count": 1, "mean": 0.25, "min": 0.25, "max": 0.25, "stdev": 0.0,
                                "p50": 0.25, "p90": 0.25, "p95": 0.25, "p99": 0.25, "p99.9": 0.25}
    empty = describe_sorted([])
    assert empty["count"] == 0
    assert all(value is None for key, value in empty.items() if key != "count")


def test_summary_uses_vllm_field_names_in_milliseconds(rows: Any) -> None:
    acc = accumulate(rows)
    summary = acc.summary(60.0)
    ok = [r for r in rows if r["success"]]
    latencies = [r["execution_time"] for r in ok]
    assert summary["mean_latency_ms"] == pytest.approx(statistics.fmean(latencies) * 1000)
    assert summary["median_latency_ms"] == summary["p50_latency_ms"]
    assert summary["p99_9_latency_ms"] == pytest.approx(reference_percentile(latencies, 99.9) * 1000)
    assert summary["std_latency_ms"] == pytest.approx(statistics.stdev(latencies) * 1000)
    assert summary["average_execution_time"] == pytest.approx(statistics.fmean(latencies))
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    assert summary["p90_ttft_ms"] == pytest.approx(reference_percentile(ttfts, 90) * 1000)
    e2e = [r["e2e_latency"] for r in ok if r["e2e_latency"] is not None]
    assert summary["max_e2el_ms"] == pytest.approx(max(e2e) * 1000)
    tpots = [r["tpot"] for r in ok if r["tpot"] is not None]
    assert summary["min_tpot_ms"] == pytest.approx(min(tpots) * 1000)
    rates = [r["tokens_per_second"] for r in ok]
    assert summary["p95_tokens_per_second"] == pytest.approx(reference_percentile(rates, 95))
    assert summary["average_tokens_per_second"] == pytest.approx(statistics.fmean(rates))
    pooled_itl = [gap for r in ok for gap in r["itl"]]
    assert summary["p99_itl_ms"] == pytest.approx(reference_percentile(pooled_itl, 99) * 1000)
    assert summary["mean_itl_per_request_ms"] == pytest.approx(
        statistics.fmean(statistics.fmean(r["itl"]) for r in ok if r["itl"]) * 1000)


def test_summary_counts_tokens_scores_and_evaluations(rows: Any) -> None:
    acc = accumulate(rows)
    summary = acc.summary(60.0)
    ok = [r for r in rows if r["success"]]
    assert summary["total_tests"] == 300
    assert summary["successful_tests"] == len(ok)
    assert summary["failed_tests"] == 300 - len(ok)
    assert summary["success_rate"] == pytest.approx(len(ok) / 300)
    assert summary["total_prompt_tokens"] == sum(r["prompt_tokens"] for r in ok)
    assert summary["total_completion_tokens"] == sum(r["completion_tokens"] for r in ok)
    assert summary["total_tokens"] == summary["total_prompt_tokens"] + summary["total_completion_tokens"]
    assert summary["estimated_token_counts"] == sum(r["tokens_estimated"] for r in rows)
    scores = [r["reasoning_score"] for r in rows if r["reasoning_score"] is not None]
    assert summary["mean_reasoning_score"] == pytest.approx(statistics.fmean(scores))
    judged = [r["evaluation_passed"] for r in rows if r["evaluation_passed"] is not None]
    assert summary["evaluation_pass_rate"] == pytest.approx(sum(judged) / len(judged))


def test_failed_results_never_feed_latency() -> None:
    acc = StatsAccumulator()
    acc.add({"success": True, "execution_time": 1.0, "tokens_per_second": 10.0})
    acc.add({"success": False, "execution_time": 600.0, "tokens_per_second": None})
    summary = acc.summary(10.0)
    assert summary["max_latency_ms"] == 1000.0
    assert summary["mean_ttft_ms"] is None  # nothing was streamed
    assert summary["p99_itl_ms"] is None


def test_incremental_summaries_equal_one_shot(rows: Any) -> None:
    incremental = StatsAccumulator()
    for row in rows[:120]:
        incremental.add(row)
    incremental.summary(1.0)  # sorts the series; later adds must still count
    incremental.by_category()
    for row in rows[120:]:
        incremental.add(row)
    one_shot = accumulate(rows)
    assert incremental.summary(30.0) == one_shot.summary(30.0)
    assert incremental.by_model() == one_shot.by_model()
    ok_latencies = [r["execution_time"] for r in rows if r["success"]]
    assert incremental.summary(30.0)["p95_latency_ms"] == pytest.approx(
        describe_sorted(sorted(ok_latencies))["p95"] * 1000)


def test_throughput_divides_by_wall_time_and_is_none_without_it() -> None:
    acc = StatsAccumulator()
    for tokens in (100, 200, 300, 400):
        acc.add({"success": True, "execution_time": 1.0, "completion_tokens": tokens, "prompt_tokens": 10})
    acc.add({"success": False, "execution_time": 0.5})
    summary = acc.summary(8.0)
    assert summary["request_throughput"] == 0.5
    assert summary["output_throughput"] == 125.0
    assert summary["duration_s"] == 8.0
    assert acc.summary(0.0)["request_throughput"] is None


def test_goodput_counts_successes_that_met_every_slo() -> None:
    acc = StatsAccumulator()
    for success, slo_passed in ((True, True), (True, False), (True, None), (False, None)):
        acc.add({"success": success, "execution_time": 1.0, "slo_passed": slo_passed})
    summary = acc.summary(1.0)
    assert summary["goodput"] == 0.5
    assert summary["success_rate"] == 0.75


def test_goodput_without_slos_equals_success_rate(rows: Any) -> None:
    acc = accumulate(rows)
    summary = acc.summary(1.0)
    assert summary["goodput"] == summary["success_rate"]


def test_pooled_itl_weights_chunks_and_per_request_mean_weights_requests() -> None:
    acc = StatsAccumulator()
    acc.add({"success": True, "execution_time": 1.0, "itl": [0.010]})
    acc.add({"success": True, "execution_time": 1.0, "itl": [0.030, 0.030, 0.030]})
    summary = acc.summary(1.0)
    assert summary["mean_itl_ms"] == pytest.approx(25.0)
    assert summary["mean_itl_per_request_ms"] == pytest.approx(20.0)


def test_groups_by_category_and_model_hold_only_their_results(rows: Any) -> None:
    acc = accumulate(rows)
    categories = acc.by_category()
    assert sorted(categories) == sorted(["math", "code", NO_GROUP])
    math_rows = [r for r in rows if r["category"] == "math"]
    math_ok = [r["execution_time"] for r in math_rows if r["success"]]
    group = categories["math"]
    assert group["total_tests"] == len(math_rows)
    assert group["successful_tests"] == len(math_ok)
    assert group["failed_tests"] == len(math_rows) - len(math_ok)
    assert group["p50_latency_ms"] == pytest.approx(reference_percentile(math_ok, 50) * 1000)
    assert "p99_itl_ms" not in group and "request_throughput" not in group
    models = acc.by_model()
    assert {name: m["total_tests"] for name, m in models.items()} == {"small": 150, "large": 150}
    large_scores = [r["reasoning_score"] for r in rows if r["model"] == "large" and r["reasoning_score"] is not None]
    assert models["large"]["mean_reasoning_score"] == pytest.approx(statistics.fmean(large_scores))


def test_slowest_lists_the_longest_successful_tests_first() -> None:
    acc = StatsAccumulator(slowest_kept=3)
    for index, seconds in enumerate([0.5, 9.0, 0.1, 4.0, 7.0, 4.0, 0.2]):
        acc.add({"test_id": f"t{index}", "test_name": f"n{index}", "success": index != 1,
                 "execution_time": seconds})
    assert acc.slowest(2) == [
        {"test_id": "t4", "label": "t4", "test_name": "n4", "execution_time": 7.0, "success": True},
        {"test_id": "t3", "label": "t3", "test_name": "n3", "execution_time": 4.0, "success": True},
    ]
    # at most slowest_kept are remembered; of two equal times the earlier test stays
    assert [s["test_id"] for s in acc.slowest(10)] == ["t4", "t3", "t5"]


def test_failed_and_lost_tests_are_not_among_the_slowest() -> None:
    acc = StatsAccumulator(slowest_kept=3)
    acc.add({"test_id": "ok", "test_name": "ok", "success": True, "execution_time": 0.4})
    for index in range(3):  # what the recorder adds for a crashed worker's test
        acc.add({"test_id": f"lost{index}", "test_name": f"lost{index}", "success": False, "execution_time": 0.0})
    acc.add({"test_id": "refused", "test_name": "refused", "success": False, "execution_time": 0.001})
    acc.add({"test_id": "timed_out", "test_name": "timed_out", "success": False, "execution_time": 30.0})
    assert [s["test_id"] for s in acc.slowest(5)] == ["ok"]  # a failure's time says how fast it failed


def test_one_rule_says_how_many_samples_each_percentile_needs() -> None:
    from pytest_llmbench.metrics.samples import min_samples, shortfall, vouched

    assert [min_samples(stat) for stat in ("mean", "max", "median", "p50", "p90", "p95", "p99", "p99_9", "p99.9")] \
        == [1, 1, 6, 6, 36, 72, 368, 3688, 3688]
    figures = {"count_ttft": 99, "p95_ttft_ms": 8.0, "p99_ttft_ms": 9.0, "p99_9_ttft_ms": 9.5, "mean_ttft_ms": 5.0,
               "count_latency": 3688, "p99_9_latency_ms": 20.0, "success_rate": 1.0}
    assert shortfall("p99_ttft_ms", figures) == "p99 of 99 samples, needs 368 for 95%"
    assert shortfall("p99_9_ttft_ms", figures) == "p99.9 of 99 samples, needs 3688 for 95%"
    assert shortfall("p99_ttft_ms", {**figures, "confidence_level": 0.9}) == "p99 of 99 samples, needs 299 for 90%"
    assert [shortfall(key, figures) for key in ("p95_ttft_ms", "mean_ttft_ms", "p99_9_latency_ms", "success_rate",
                                                "p99_tpot_ms")] == [None] * 5  # enough, no percentile, no count
    assert vouched(figures) == {**figures, "p99_ttft_ms": None, "p99_9_ttft_ms": None}


def test_summary_keys_cover_every_documented_field() -> None:
    keys = summary_keys()
    for metric in ("latency_ms", "ttft_ms", "itl_ms", "tpot_ms", "e2el_ms", "tokens_per_second"):
        for stat in ("mean", "median", "std", "min", "max", "p50", "p90", "p95", "p99", "p99_9"):
            assert f"{stat}_{metric}" in keys
    assert {"total_tests", "successful_tests", "failed_tests", "success_rate", "average_execution_time",
            "total_prompt_tokens", "total_completion_tokens", "total_tokens", "average_tokens_per_second",
            "request_throughput", "output_throughput", "goodput", "duration_s", "estimated_token_counts",
            "mean_reasoning_score", "evaluation_pass_rate", "mean_itl_per_request_ms"} <= keys


def test_format_value_shows_units_per_key() -> None:
    assert format_value("p99_ttft_ms", 812.34) == "812.3 ms"
    assert format_value("success_rate", 0.95) == "95.0%"
    assert format_value("mean_tokens_per_second", 41.26) == "41.3 tok/s"
    assert format_value("request_throughput", 2.0) == "2.00 req/s"
    assert format_value("total_tests", 12) == "12"
    assert format_value("p50_latency_ms", 120.0, unit=False) == "120.0"
    assert format_value("mean_ttft_ms", None) == "n/a"


def test_ten_thousand_streamed_rows_keep_the_accumulator_small() -> None:
    # A million ITL gaps as Python floats in lists would hold over 32 MiB, and sorting them with sorted()
    # would briefly need about 40 MiB more; 8-byte doubles sorted in runs stay well under both bounds.
    rng = random.Random(7)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        acc = StatsAccumulator()
        for index in range(10_000):
            acc.add({"test_id": f"t{index}", "test_name": f"test {index}", "category": f"c{index % 20}",
                     "model": "m", "success": True, "execution_time": 1.0 + index % 97 / 100,
                     "completion_tokens": 100, "prompt_tokens": 20, "tokens_per_second": 50.0,
                     "ttft": 0.1, "tpot": 0.02, "e2e_latency": 2.0,
                     "itl": [rng.random() / 10 for _ in range(100)]})
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.reset_peak()
        summary = acc.summary(100.0)
        acc.by_category()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert held < 24 * 2**20, f"accumulator holds {held / 2**20:.1f} MiB"
    assert peak < 36 * 2**20, f"summary peaked at {peak / 2**20:.1f} MiB"
    rng = random.Random(7)
    itl = [rng.random() / 10 for _ in range(1_000_000)]
    assert summary["total_tests"] == 10_000
    assert summary["min_itl_ms"] == min(itl) * 1000
    assert summary["p99_itl_ms"] == pytest.approx(reference_percentile(itl, 99) * 1000)
    assert summary["p50_itl_ms"] == pytest.approx(reference_percentile(itl, 50) * 1000)
    assert summary["mean_itl_ms"] == pytest.approx(math.fsum(itl) / len(itl) * 1000)
