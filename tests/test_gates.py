"""Per-test SLOs, run-wide SLOs and baseline regressions, through whole sessions against a stub server."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest
from faultserver import FaultServer
from openai_stub import OpenAIStub, write_suite

STUB = {"delay": 0.05}


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: Any) -> Any:
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *args)


def test_per_test_slo_miss_fails_the_item_naming_metric_limit_and_value(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "tight", "slo": {"max_latency_s": 0.001}},
        {"id": "loose", "slo": {"max_latency_s": 30}},
    ])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*SLO missed: latency 0.0* s > max_latency_s 0.001 s*"])
    saved = json.loads((pytester.path / "llmbench_results" / "latest" / "Test_0_result.json").read_text())
    assert saved["slo_result"]["passed"] is False
    assert saved["slo_result"]["misses"][0]["metric"] == "latency"


def test_ttft_slo_without_streaming_fails_and_says_how_to_measure_it(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "t", "slo": {"max_ttft_s": 5}}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ttft*not measured*--llmbench-stream*"])


def test_run_slo_miss_fails_the_session_with_a_clear_line(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=1ms",
                 "--llmbench-slo", "success_rate=50%")
    result.assert_outcomes(passed=2, failed=1)  # the gate is a failure in pytest's own counts
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        # 2 of 2 successes do not show a rate of 50% or more with 95% confidence: undecided, passed with a warning
        "gate passed: run SLO success_rate >= 50% (undecided): measured 100.0%, 95% interval ?34.2, 100.0?% of 2 "
        "requests",
        # the smaller of two samples already exceeds 1 ms: the p99 does too, however few the samples
        "gate FAILED: run SLO latency_p99 <= 1 ms missed: measured * ms, 95% interval ?*, open? ms of 2 samples",
        "*short test summary info*",
        "FAILED llmbench::slo?latency_p99? - run SLO latency_p99 <= 1*",
        "*= 1 failed, 2 passed, 1 warning in *"])  # the warning: the undecided success rate
    batch = json.loads(next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json")).read_text())
    assert batch["gates"]["passed"] is False and batch["gates"]["slo_misses"][0]["metric"] == "p99_latency_ms"


def test_run_slo_that_holds_keeps_the_session_green(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=20s",
                 "--llmbench-slo", "success_rate=99%")
    assert result.ret == pytest.ExitCode.OK


def test_bad_run_slo_is_a_usage_error_before_any_request(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latncy_p99=1ms")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert stub.requests == []


def _baseline_run(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> Any:
    assert run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-output", "base").ret == pytest.ExitCode.OK
    return next((pytester.path / "base" / "latest").glob("batch_*.json"))


def test_baseline_regression_beyond_threshold_fails_the_session(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": name} for name in "abcdef"])  # 6 bound a median
    baseline = _baseline_run(pytester, stub, suite)
    stub.delay = 0.3  # six times slower
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", str(baseline),
                 "--llmbench-compare-fail", "p50_latency_ms:10%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines([f"baseline: {baseline}", "*p50_latency_ms*",
                                 "gate FAILED: p50_latency_ms regressed *%*limit +10%, p=*",
                                 "FAILED llmbench::compare?p50_latency_ms? - p50_latency_ms regressed *"])


def test_baseline_within_threshold_passes_and_prints_the_table(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    baseline = _baseline_run(pytester, stub, suite)
    shutil.rmtree(pytester.path / "llmbench_results" / "latest", ignore_errors=True)
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", str(baseline),
                 "--llmbench-compare-fail", "p50_latency_ms:500%")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["metric*baseline*now*change*", "*p50_latency_ms*"])


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--llmbench-compare", "nope.json", "*nope.json*"),
    ("--llmbench-few-samples", "ignore", "*--llmbench-few-samples: expected warn or fail, got 'ignore'*")])
def test_a_missing_baseline_file_or_an_unknown_few_samples_rule_is_a_usage_error(pytester: pytest.Pytester, stub: OpenAIStub, option: Any, value: Any, said: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said])


def test_a_failed_gate_is_a_junit_failure_and_lf_reruns_everything(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite),
                                "--llmbench-slo", "latency_p99=1ms", "--junitxml", "out.xml")
    result.assert_outcomes(passed=2, failed=1)
    junit = (pytester.path / "out.xml").read_text()
    assert 'name="slo[latency_p99]"' in junit and "<failure message=\"run SLO latency_p99 &lt;= 1 ms missed" in junit
    rerun = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "--lf")
    rerun.assert_outcomes(passed=2)  # a run-wide gate belongs to no test: --lf runs the whole suite again
    rerun.stdout.fnmatch_lines(["run-last-failure: 1 known failures not in selected tests*"])


def test_a_gate_failure_under_xdist_is_counted_once(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    result = pytester.runpytest_subprocess("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite),
                                           "--llmbench-slo", "latency_p99=1ms", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED llmbench::slo?latency_p99? - *"])


def test_a_baseline_is_compared_on_the_shared_tests_and_every_difference_is_named(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=3)
    stub.delay = 0.3
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--deselect", "s.json::c", "--llmbench-stream",
                 "--llmbench-compare", "latest", "--llmbench-compare-fail", "latency_p50:10%")
    result.assert_outcomes(passed=2, failed=1, deselected=1)
    result.stdout.fnmatch_lines([
        "baseline: */llmbench_results/2*/batch_results_*.json",
        "baseline WARNING: the test sets differ: 2 tests in both, 1 only in the baseline, 0 only in this run;*",
        "baseline WARNING: streaming differ: False in the baseline, True in this run",
        "*p50_latency_ms*",
        "largest regressions: ??stub-model? *s -> *s (+*%), ??stub-model? *"])
    batch = json.loads(next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json")).read_text())
    comparison = batch["gates"]["comparison"]
    assert comparison["shared_tests"] == 2 and len(comparison["warnings"]) == 2
    assert sorted(d["test_id"] for d in comparison["per_test"]) == ["a", "b"]
    assert all(d["now_s"] > d["baseline_s"] and d["change_pct"] > 0 for d in comparison["per_test"])
    result.stdout.fnmatch_lines(["*LLMBenchWarning: baseline: the test sets differ*"])


def test_the_same_tests_and_settings_compare_without_a_warning(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "latest")
    assert "baseline WARNING" not in result.stdout.str()


def test_an_empty_streamed_answer_says_the_stream_had_no_content_not_to_turn_streaming_on(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    from faultserver import Reply

    fault_server.always(Reply.json({"object": "list", "data": [{"id": "m", "object": "model"}]}), path="/v1/models")
    empty = {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 0}}
    fault_server.always(Reply.sse([empty]), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": "t", "stream": True, "slo": {"max_ttft_s": 5}}])

    result = pytester.runpytest("--llmbench-endpoint", fault_server.url_for("/v1"), "--llmbench-suite", str(suite),
                                "-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ttft not measured, so max_ttft_s 5 s could not be checked (the stream carried no "
                                 "content: an empty answer has no first token)*"])
    assert "--llmbench-stream" not in result.stdout.str()


# -- issue 27, point 4: one rule for how many samples a percentile rests on ----------------------------------------

RULE_LINE = "  -: too few samples to bound the percentile at 95% (p90 needs 36, p95 72, p99 368, p99.9 3688)"


def test_a_gate_on_a_p99_of_8_samples_says_so_and_warns_where_the_table_shows_a_dash(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(8)])

    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=60s",
                 "--llmbench-slo", "latency_p50=60s")

    assert result.ret == pytest.ExitCode.OK
    [latency] = [line for line in result.stdout.lines if line.startswith("latency ms")]
    # n, mean, std, min, p50, p90, p95, p99, p99.9, max; a bounded percentile's "(±1.3)" is no cell of its own
    cells = [cell for cell in latency.split()[2:] if not cell.startswith("(±")]
    assert cells[0] == "8" and cells[4] != "-" and cells[5:9] == ["-", "-", "-", "-"]
    result.stdout.fnmatch_lines([
        "*LLMBenchWarning: run SLO latency_p99 <= 60000 ms undecided: measured * ms, 95% interval ?*, open? ms of 8 "
        "samples (with --llmbench-slo-undecided fail such a gate fails)",
        RULE_LINE,
        "gate passed: run SLO latency_p99 <= 60000 ms (undecided): measured * ms, 95% interval ?*, open? ms of 8 "
        "samples",
        # 8 samples bound a median: decided
        "gate passed: run SLO latency_p50 <= 60000 ms: measured * ms, 95% interval ?*, *? ms of 8 samples"])
    batch = json.loads(next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json")).read_text())
    [undecided] = batch["gates"]["undecided"]
    assert undecided.startswith("run SLO latency_p99 <= 60000 ms undecided: measured ")
    low, high = batch["aggregate"]["p99_latency_ms_ci"]
    assert high is None and low <= batch["aggregate"]["p99_latency_ms"]  # no sample bounds it from above
    assert batch["aggregate"]["count_latency"] == 8 and batch["aggregate"]["p99_latency_ms"] > 0  # kept, counted
    html = (pytester.path / "llmbench_results" / "latest" / "report.html").read_text()
    assert re.search(r'<div class="value" title="p99 of 8 samples, needs 368 for 95%">-</div>'
                     r'<div class="label">latency p99</div>', html)
    assert re.search(r'<div class="value">[\d.]+ ms</div><div class="label">latency p50</div>', html)
    assert "-: too few samples to bound the percentile at 95% (p90 needs 36, p95 72, p99 368, p99.9 3688)" in html


def test_with_few_samples_fail_a_gate_on_too_few_samples_fails_unjudged(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(8)])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=8)

    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=60s",
                 "--llmbench-compare", "latest", "--llmbench-compare-fail", "latency_p90:1000%",
                 "--llmbench-compare-fail", "latency_p50:100000%", "--llmbench-few-samples", "fail",
                 "--llmbench-slo-undecided", "fail")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines([
        "p50_latency_ms * ms * ms *% *",
        "p99_latency_ms * - * - * n/a *",  # the compare table follows the same rule
        RULE_LINE,
        "gate FAILED: run SLO latency_p99 <= 60000 ms undecided: measured * ms, 95% interval ?*, open? ms of 8 "
        "samples (--llmbench-slo-undecided fail)"])
    result.stdout.fnmatch_lines(["gate FAILED: p90_latency_ms not judged against the baseline: p90 of 8 samples, "
                                 "needs 36 for 95% (--llmbench-few-samples fail)"])
    result.stdout.fnmatch_lines(["gate passed: p50_latency_ms *% against the baseline, limit +100000%*"])


def test_a_sweep_follows_the_same_rule_in_its_table_and_its_verdicts(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(6)])  # 6 bound a median

    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-sweep", "concurrency=1,2",
                 "--llmbench-slo", "latency_p99=60s")

    result.assert_outcomes(passed=12)
    lines = result.stdout.lines
    header = next(n for n, line in enumerate(lines) if line.split()[:2] == ["level", "req"])
    columns = lines[header].split()
    for level in lines[header + 1:header + 3]:
        cells = dict(zip(columns, level.split()))
        assert cells["p99"] == "-" and cells["p50"] != "-"  # "p99 ms" and "p50 ms" split in two words
    result.stdout.fnmatch_lines([RULE_LINE, "knee: c2 *",
                                 "sweep WARNING: level c1: run SLO latency_p99 <= 60000 ms undecided: measured * ms, "
                                 "95% interval ?*, open? ms of 6 samples"])
