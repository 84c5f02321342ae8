"""Per-test SLOs, run-wide SLOs and baseline regressions, through whole sessions against a stub server."""

from __future__ import annotations

import json
import shutil

import pytest
from openai_stub import write_suite

STUB = {"delay": 0.05}


def run(pytester, stub, *args):
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *args)


def test_per_test_slo_miss_fails_the_item_naming_metric_limit_and_value(pytester, stub):
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


def test_ttft_slo_without_streaming_fails_and_says_how_to_measure_it(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "t", "slo": {"max_ttft_s": 5}}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ttft*not measured*--llmbench-stream*"])


def test_run_slo_miss_fails_the_session_with_a_clear_line(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=1ms",
                 "--llmbench-slo", "success_rate=50%")
    result.assert_outcomes(passed=2, failed=1)  # the gate is a failure in pytest's own counts
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "gate passed: run SLO success_rate >= 50%: measured 100.0%",
        "gate FAILED: run SLO latency_p99 <= 1 ms missed: measured * ms",
        "*short test summary info*",
        "FAILED llmbench::slo?latency_p99? - run SLO latency_p99 <= 1*",
        "*= 1 failed, 2 passed in *"])
    batch = json.loads(next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json")).read_text())
    assert batch["gates"]["passed"] is False and batch["gates"]["slo_misses"][0]["metric"] == "p99_latency_ms"


def test_run_slo_that_holds_keeps_the_session_green(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latency_p99=20s",
                 "--llmbench-slo", "success_rate=99%")
    assert result.ret == pytest.ExitCode.OK


def test_bad_run_slo_is_a_usage_error_before_any_request(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-slo", "latncy_p99=1ms")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert stub.requests == []


def _baseline_run(pytester, stub, suite):
    run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-output", "base").assert_outcomes(passed=3)
    return next((pytester.path / "base" / "latest").glob("batch_*.json"))


def test_baseline_regression_beyond_threshold_fails_the_session(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    baseline = _baseline_run(pytester, stub, suite)
    stub.delay = 0.3  # six times slower
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", str(baseline),
                 "--llmbench-compare-fail", "p50_latency_ms:10%")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([f"baseline: {baseline}", "*p50_latency_ms*",
                                 "gate FAILED: p50_latency_ms regressed *%*limit +10%",
                                 "FAILED llmbench::compare?p50_latency_ms? - p50_latency_ms regressed *"])


def test_baseline_within_threshold_passes_and_prints_the_table(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    baseline = _baseline_run(pytester, stub, suite)
    shutil.rmtree(pytester.path / "llmbench_results" / "latest", ignore_errors=True)
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", str(baseline),
                 "--llmbench-compare-fail", "p50_latency_ms:500%")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["metric*baseline*now*change*", "*p50_latency_ms*"])


def test_missing_baseline_file_is_a_usage_error(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "nope.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nope.json*"])


def test_a_failed_gate_is_a_junit_failure_and_lf_reruns_everything(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite),
                                "--llmbench-slo", "latency_p99=1ms", "--junitxml", "out.xml")
    result.assert_outcomes(passed=2, failed=1)
    junit = (pytester.path / "out.xml").read_text()
    assert 'name="slo[latency_p99]"' in junit and "<failure message=\"run SLO latency_p99 &lt;= 1 ms missed" in junit
    rerun = pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "--lf")
    rerun.assert_outcomes(passed=2)  # a run-wide gate belongs to no test: --lf runs the whole suite again
    rerun.stdout.fnmatch_lines(["run-last-failure: 1 known failures not in selected tests*"])


def test_a_gate_failure_under_xdist_is_counted_once(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    result = pytester.runpytest_subprocess("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite),
                                           "--llmbench-slo", "latency_p99=1ms", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED llmbench::slo?latency_p99? - *"])


def test_a_baseline_is_compared_on_the_shared_tests_and_every_difference_is_named(pytester, stub):
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


def test_the_same_tests_and_settings_compare_without_a_warning(pytester, stub):
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "latest")
    assert "baseline WARNING" not in result.stdout.str()


def test_an_empty_streamed_answer_says_the_stream_had_no_content_not_to_turn_streaming_on(pytester, fault_server):
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
