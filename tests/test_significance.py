"""Issue 30: confidence intervals, undecided run SLOs and significant-only comparisons, in real sessions.

Timing is judged by what the stub server was told to do (a prompt's fixed extra delay), never by wall-clock luck:
a 300 ms delay against a stub that answers in a millisecond or two leaves no overlap on any machine.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

from pytest_llmbench.batch import Row
from pytest_llmbench.metrics.intervals import min_samples, percentile_interval, wilson
from pytest_llmbench.metrics.significance import judge_change, rank_sum_p

SLOW = 0.3  # seconds the stub adds for a prompt with "slow" in it


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: Any) -> pytest.RunResult:
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", "--llmbench-retries", "0",
                              *args)


def latest_batch(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(next((folder / "latest").glob("batch_*.json")).read_text())
    return loaded


def _rows(seconds: list[float]) -> list[Row]:
    return [Row(test_id=f"t{n}", success=True, execution_time=value)  # type: ignore[typeddict-item]
            for n, value in enumerate(seconds)]


# -- the statistics themselves ------------------------------------------------------------------------------------

def test_rank_sum_matches_scipys_documented_example_and_says_nothing_changed_when_all_is_equal() -> None:
    # scipy.stats.mannwhitneyu(males, females, method="asymptotic") in scipy's documentation: p = 0.11134688653314041
    males, females = [19.0, 22, 16, 29, 24], [20.0, 11, 17, 12]
    assert rank_sum_p(males, females) == pytest.approx(0.11134688653314041, abs=1e-9)
    assert rank_sum_p(females, males) == pytest.approx(0.11134688653314041, abs=1e-9)  # two-sided
    assert rank_sum_p([5.0] * 10, [5.0] * 12) == 1.0


def test_a_seeded_shift_is_significant_and_noise_is_not_and_the_changes_interval_covers_the_true_change() -> None:
    rng = random.Random(30)
    before = [rng.lognormvariate(0, 0.3) for _ in range(400)]
    same = [rng.lognormvariate(0, 0.3) for _ in range(400)]
    slower = [1.2 * rng.lognormvariate(0, 0.3) for _ in range(400)]  # 20 % slower, every request
    for name in ("p50_latency_ms", "mean_latency_ms", "p90_latency_ms"):
        noise = judge_change(name, _rows(before), _rows(same))
        shift = judge_change(name, _rows(before), _rows(slower))
        assert noise is not None and not noise.significant and noise.p_value > 0.05
        assert shift is not None and shift.significant and shift.p_value < 1e-6
        assert shift.interval_pct is not None
        low, high = shift.interval_pct
        assert low is not None and high is not None and low < 20.0 < high  # the true change is +20 %
        assert noise.interval_pct is not None
        noise_low, noise_high = noise.interval_pct
        assert noise_low is not None and noise_high is not None and noise_low < 0 < noise_high


def test_shares_are_tested_on_each_requests_outcome_and_throughputs_are_untested() -> None:
    ok = [Row(test_id=f"t{n}", success=True) for n in range(50)]  # type: ignore[typeddict-item]
    half = [Row(test_id=f"t{n}", success=n % 2 == 0) for n in range(50)]  # type: ignore[typeddict-item]
    tested = judge_change("success_rate", ok, half)
    assert tested is not None and tested.significant and tested.interval_pct is None
    assert judge_change("request_throughput", ok, half) is None
    assert judge_change("p50_latency_ms", _rows([1.0, 2.0]), _rows([1.0, 2.0, 3.0])) is None  # 2 requests: no test


def test_order_statistics_intervals_and_wilson() -> None:
    ordered = [float(n) for n in range(1, 101)]
    low, high = percentile_interval(ordered, 50.0)
    assert (low, high) == (40.0, 60.0)  # the binomial(100, 0.5) ranks of a 95 % interval of the median
    assert percentile_interval(ordered, 99.0) == (97.0, None)  # 100 samples cannot bound a p99 from above
    assert min_samples(50.0) == 6 and min_samples(99.0) == 368
    share_low, share_high = wilson(95, 100)
    assert share_low == pytest.approx(0.8882, abs=1e-4) and share_high == pytest.approx(0.9785, abs=1e-4)


# -- undecided run SLOs ------------------------------------------------------------------------------------------

def test_an_undecided_slo_passes_silently_with_pass_and_fails_with_fail(pytester: pytest.Pytester,
                                                                         stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(8)])
    passed = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=60s",
                 "--llmbench-slo-undecided", "pass")
    assert passed.ret == pytest.ExitCode.OK
    passed.stdout.fnmatch_lines(["gate passed: run SLO latency_p99 <= 60000 ms (undecided): measured * ms, 95% "
                                 "interval ?*, open? ms of 8 samples"])
    assert "LLMBenchWarning" not in passed.stdout.str()
    failed = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=60s",
                 "--llmbench-slo-undecided", "fail")
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["gate FAILED: run SLO latency_p99 <= 60000 ms undecided: * (--llmbench-slo-undecided "
                                 "fail)"])
    bad = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo-undecided", "maybe")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llmbench-slo-undecided: expected warn, pass, fail, got 'maybe'*"])


def test_a_decided_slo_passes_on_its_interval_and_the_terminal_shows_it(pytester: pytest.Pytester,
                                                                        stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(12)])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p50=60s")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  ±: 95% confidence interval (order statistics)",
                                 "gate passed: run SLO latency_p50 <= 60000 ms: measured * ms, 95% interval "
                                 "?*, *? ms of 12 samples"])
    [latency] = [line for line in result.outlines if line.startswith("latency ms")]
    assert re.search(r"[\d.]+ \(±[\d.]+\)", latency)  # the p50 carries its interval's half-width
    batch = latest_batch(pytester.path / "llmbench_results")
    low, high = batch["aggregate"]["p50_latency_ms_ci"]
    assert low <= batch["aggregate"]["p50_latency_ms"] <= high and batch["aggregate"]["confidence_level"] == 0.95
    assert batch["aggregate"]["success_rate_ci"][1] == 1.0
    html = (next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json")).parent / "report.html").read_text()
    assert re.search(r'<div class="label">latency p50</div><div class="ci">95% interval \[[\d.]+, [\d.]+\] ms</div>',
                     html)
    assert re.search(r'<div class="label">request success</div><div class="ci">95% interval \[[\d.]+, 100.0\]%</div>',
                     html)


# -- significant-only comparisons ---------------------------------------------------------------------------------

def _two_runs(pytester: pytest.Pytester, stub: OpenAIStub, first: list[str], second: list[str],
              *args: str, both: tuple[str, ...] = ()) -> tuple[pytest.RunResult, dict[str, Any], Path, Path]:
    """A baseline run of the prompts ``first``, then a run of ``second`` compared with it (``args``); ``both``:
    options of both runs."""
    suite = pytester.path / "s.json"
    write_suite(suite, [{"id": f"t{n}", "prompt": prompt} for n, prompt in enumerate(first)])
    assert run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-output", "base",
               *both).ret == pytest.ExitCode.OK
    baseline = next((pytester.path / "base" / "latest").glob("batch_*.json"))
    write_suite(suite, [{"id": f"t{n}", "prompt": prompt} for n, prompt in enumerate(second)])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", str(baseline), *args, *both)
    current = next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json"))
    return result, json.loads(current.read_text()), baseline, current


def _report_ab(pytester: pytest.Pytester, baseline: Path, current: Path) -> str:
    """llmbench-report's comparison of the two batches."""
    out = pytester.path / "ab.html"
    cli = subprocess.run([sys.executable, "-m", "pytest_llmbench.session.report_html.cli", str(baseline), str(current),
                          "-o", str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 0, cli.stderr
    return out.read_text()


def _report_p50(pytester: pytest.Pytester, baseline: Path, current: Path) -> str:
    """llmbench-report's side-by-side row of the two batches' latency p50."""
    row = re.search(r"<tr><th>latency p50</th>(.*?)</tr>", _report_ab(pytester, baseline, current), re.S)
    assert row is not None
    return row.group(1)


def test_a_large_change_that_is_not_significant_is_neither_failed_nor_coloured(pytester: pytest.Pytester,
                                                                               stub: OpenAIStub) -> None:
    stub.delays = {"slow": SLOW}
    # One test of nine turns slow: the median jumps from a fast answer to a slow one, the distribution hardly moves.
    # Even if every answer of the second run came a little later than its like in the first (a busier machine),
    # the rank test's p stays above 0.028: at 99 % confidence that is never significant.
    result, batch, baseline, current = _two_runs(pytester, stub, ["fast"] * 5 + ["slow"] * 4,
                                                 ["fast"] * 4 + ["slow"] * 5,
                                                 "--llmbench-compare-fail", "latency_p50:10%",
                                                 "--llmbench-confidence", "0.99")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["p50_latency_ms * ms * ms *+*%  * not significant (p=*)",
                                 "gate passed: p50_latency_ms +*% against the baseline, limit +10%, not significant "
                                 "(p=*)"])
    deltas = {d["name"]: d for d in batch["gates"]["comparison"]["deltas"]}
    p50 = deltas["p50_latency_ms"]
    assert p50["change_pct"] > 1000 and p50["significant"] is False and p50["p_value"] > 0.02
    html = (current.parent / "report.html").read_text()
    assert re.search(r'<td>p50_latency_ms</td><td>[^<]*</td><td>[^<]*</td><td class="">\+[\d.]+%</td>'
                     r'<td class="muted">not significant \(p=[\d.]+\)', html)
    # llmbench-report on the two batches: the same test, no colour
    assert re.search(r'<span class="delta " title="not significant \(p=[\d.]+', _report_p50(pytester, baseline, current))


def test_a_real_slowdown_is_significant_coloured_and_fails_the_gate(pytester: pytest.Pytester,
                                                                    stub: OpenAIStub) -> None:
    stub.delays = {"slow": SLOW}
    result, batch, baseline, current = _two_runs(pytester, stub, ["fast"] * 8, ["slow"] * 8,
                                                 "--llmbench-compare-fail", "latency_p50:10%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["gate FAILED: p50_latency_ms regressed *% (* -> * ms), limit +10%, p=*, ?+*, +*?%"])
    p50 = {d["name"]: d for d in batch["gates"]["comparison"]["deltas"]}["p50_latency_ms"]
    assert p50["significant"] is True and p50["p_value"] < 0.01
    assert p50["change_interval"][0] > 0  # the change's interval excludes no change
    html = (current.parent / "report.html").read_text()
    assert re.search(r'<td>p50_latency_ms</td><td>[^<]*</td><td>[^<]*</td><td class="worse">\+[\d.]+%</td>'
                     r'<td class="muted">p=', html)
    assert re.search(r'<span class="delta worse" title="p=', _report_p50(pytester, baseline, current))


# -- per-test changes over repeats --------------------------------------------------------------------------------

def test_a_tests_change_over_its_repeats_is_tested_and_only_a_significant_rise_is_a_regression() -> None:
    from pytest_llmbench.metrics.baseline_tests import delta_of

    rose = delta_of(("t1", "m"), [0.10, 0.11, 0.12, 0.13], [0.30, 0.31, 0.32, 0.33], 0.95)
    mixed = delta_of(("t2", "m"), [0.10, 0.30, 0.11, 0.31], [0.12, 0.32, 0.30, 0.10], 0.95)
    single = delta_of(("t3", "m"), [0.10], [0.30], 0.95)
    assert rose.significant is True and rose.repeats == (4, 4) and rose.baseline_s == pytest.approx(0.115)
    assert mixed.significant is False and mixed.p_value is not None and mixed.p_value > 0.5
    assert single.p_value is None and single.significant is None  # one result each side: untested, judged as before


def test_per_test_deltas_over_repeats_in_a_session_and_the_report(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delays = {"slow": SLOW}
    result, batch, baseline, current = _two_runs(pytester, stub, ["fast a", "fast b"], ["slow a", "fast b"],
                                                 both=("--llmbench-repeat", "4"))
    assert result.ret == pytest.ExitCode.OK
    per_test = {d["test_id"]: d for d in batch["gates"]["comparison"]["per_test"]}
    assert per_test["t0"]["repeats"] == [4, 4] and per_test["t0"]["significant"] is True
    assert per_test["t0"]["p_value"] < 0.05 and per_test["t1"]["p_value"] is not None  # each test tested
    result.stdout.fnmatch_lines(["largest regressions: t0?stub-model? *s -> *s (+*%)*"])
    html = _report_ab(pytester, baseline, current)  # its per-test table: medians over the repeats
    assert re.search(r'<tr><td>t0</td><td>[^<]*</td><td>[^<]*</td><td class="worse">[^<]*</td><td class="text">stub-model</td>',
                     html)


def test_a_rise_its_repeats_do_not_support_is_no_regression_and_stays_uncoloured() -> None:
    from pytest_llmbench.batch import Batch
    from pytest_llmbench.metrics.baseline_tests import pair
    from pytest_llmbench.session.report_html.compare import test_changes

    def rows(seconds: list[float]) -> list[Row]:
        return [Row(test_id="t2", model="m", success=True, execution_time=value)  # type: ignore[typeddict-item]
                for value in seconds]

    before = rows([0.10, 0.11, 0.12, 0.30, 0.31])
    after = rows([0.10, 0.11, 0.30, 0.31, 0.32])  # the median jumps 150 %; the repeats hardly move
    first = Batch(tests=before, aggregate={})  # type: ignore[typeddict-item]
    last = Batch(tests=after, aggregate={})  # type: ignore[typeddict-item]
    pairing = pair(first, after, {})
    [delta] = pairing.per_test
    assert delta.change_pct == pytest.approx(150.0) and delta.significant is False
    assert pairing.largest_regressions() == []
    [row] = test_changes(first, last)["rows"]
    assert row["change"] == "+150.0%" and row["verdict"] == ""
