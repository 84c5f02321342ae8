"""The controller: one record of the run with and without xdist, progress, summary, hooks, crashes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from run_files import batch_of
from terminal_pty import run_in_pty

CATEGORIES = ("alpha", "beta", "gamma")


STUB = {"answers": {"long": "one two three four five six"}, "status": {"refuse": 400}}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Path:
    tests = [{"id": f"t{i:02d}", "category": CATEGORIES[i % 3], "prompt": "long" if i % 2 else "short"}
             for i in range(11)]
    tests.append({"id": "t11", "category": "gamma", "prompt": "refuse this"})
    return write_suite(pytester.path / "suite.json", tests)




def test_batch_statistics_are_the_same_with_and_without_xdist(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    common = ("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-p", "no:cacheprovider")
    pytester.runpytest_subprocess(*common, "--llmbench-output", "one").assert_outcomes(passed=11, failed=1)
    pytester.runpytest_subprocess(*common, "--llmbench-output", "two", "-n", "2").assert_outcomes(
        passed=11, failed=1)
    one, two = batch_of(pytester.path / "one" / "latest"), batch_of(pytester.path / "two" / "latest")
    exact = ("total_tests", "successful_tests", "failed_tests", "success_rate", "total_prompt_tokens",
             "total_completion_tokens", "total_tokens")
    assert {k: one["aggregate"][k] for k in exact} == {k: two["aggregate"][k] for k in exact}
    assert one["aggregate"]["total_completion_tokens"] == 5 * 6 + 6 * 2
    for name in CATEGORIES:
        assert one["categories"][name]["total_tests"] == two["categories"][name]["total_tests"] == 4
    assert sorted(r["test_id"] for r in one["tests"]) == sorted(r["test_id"] for r in two["tests"])
    assert two["run"]["workers"] == 2 and one["run"]["workers"] == 0
    assert len(list((pytester.path / "two" / "latest").glob("*_result.json"))) == 12


def test_progress_hook_is_called_once_per_result_with_consistent_numbers(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makeconftest("""
        import json
        def pytest_llmbench_progress(progress):
            with open("progress.jsonl", "a") as f:
                f.write(json.dumps(progress.to_dict()) + "\\n")
    """)
    pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-n", "2")
    snapshots = [json.loads(line) for line in (pytester.path / "progress.jsonl").read_text().splitlines()]
    assert [s["completed_tests"] for s in snapshots] == list(range(1, 13))
    assert all(s["total_tests"] == 12 for s in snapshots)
    assert all(s["successful_tests"] + s["failed_tests"] == s["completed_tests"] for s in snapshots)
    assert snapshots[-1]["failed_tests"] == 1 and snapshots[-1]["estimated_remaining_time"] == 0
    assert snapshots[-1]["total_tokens_generated"] == 5 * 6 + 6 * 2


def test_crashed_worker_is_an_error_and_every_other_result_is_kept(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makeconftest("""
        import os, signal
        def pytest_llmbench_build_request(test_case, request):
            if test_case.id == "t05":
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                           "-n", "2", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*crashed while running*t05*"])
    batch = batch_of(pytester.path / "llmbench_results" / "latest")
    ids = sorted(r["test_id"] for r in batch["tests"])
    assert ids == sorted(f"t{i:02d}" for i in range(12))
    assert batch["aggregate"]["failed_tests"] == 2
    assert [lost["nodeid"] for lost in batch["lost_tests"]] == ["suite.json::t05"]


def test_interrupted_run_writes_a_partial_batch_with_the_reason(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_build_request(test_case, request):
            if test_case.id == "t04":
                raise KeyboardInterrupt
    """)
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    batch = batch_of(pytester.path / "llmbench_results" / "latest")
    assert batch["partial"] is True and "interrupted" in batch["partial_reason"].lower()
    assert [r["test_id"] for r in batch["tests"]] == ["t00", "t01", "t02", "t03"]
    assert len(list((pytester.path / "llmbench_results" / "latest").glob("*_result.json"))) == 4


def test_summary_section_shows_counts_latency_categories_and_files(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url)
    result.stdout.fnmatch_lines([
        "*llmbench summary*",
        "tests 12: 11 passed, 1 failed | requests 91.7% successful*",
        "tokens: 77 prompt, 42 completion*",
        "*mean*p50*p90*p99*max*",
        "latency*",
        "category*tests*ok%*",
        "alpha*4*100.0%*",
        "slowest: *",
        "results: *batch_results_*.json",
    ])


def run_section(lines: list[str]) -> list[str]:
    """The lines pytest prints while the tests run: after "collected …", up to the first section header."""
    start = next(n for n, line in enumerate(lines) if line.startswith(("collected", "2 workers")))
    end = next(n for n, line in enumerate(lines) if n > start and line.startswith("===="))
    return lines[start + 1:end]


def test_a_short_run_in_a_log_is_pytests_own_output_without_progress_lines(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url)
    during = [line for line in run_section(result.outlines) if not line.startswith("server metrics:")]
    assert during[0].startswith("llmbench: http://") and during[1] == ""
    assert [line.split()[:2] for line in during[2:] if line] == [["suite.json", "...........F"]]
    assert "\r" not in result.stdout.str()


def test_a_long_run_in_a_log_gets_plain_progress_lines_and_no_blank_lines(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.4
    suite = write_suite(pytester.path / "suite.json", [{"id": f"t{i}"} for i in range(10)])
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url)
    during = [line for line in run_section(result.outlines) if not line.startswith("server metrics:")]
    progress = [n for n, line in enumerate(during) if line.startswith("llmbench ") and "tests/s" in line]
    assert progress, during
    assert "" not in during[2:-1]  # no blank line before or after a progress line
    assert all(during[n + 1].startswith("suite.json .") for n in progress)  # pytest goes on, its file named
    assert "\r" not in result.stdout.str()
    quiet = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-q")
    assert "tests/s" not in quiet.stdout.str()


def test_verbose_run_on_a_terminal_leaves_no_blank_line_after_each_test(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.4
    suite = write_suite(pytester.path / "suite.json", [{"id": f"t{i}"} for i in range(10)])
    output = run_in_pty(pytester, "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-v")
    visible = [re.sub(r"\x1b\[[0-9;]*m", "", line).split("\r")[-1] for line in output.split("\r\n")]
    first = next(n for n, line in enumerate(visible) if "::t0 " in line)
    last = next(n for n, line in enumerate(visible) if "::t9 " in line)
    assert "" not in visible[first:last + 1], visible[first:last + 1]
    assert sum("PASSED" in line for line in visible[first:last + 1]) == 10


def test_terminal_progress_redraws_one_line_in_place(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    output = run_in_pty(pytester, "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url)
    assert "\rllmbench 12/12" in output
    line = next(part for part in output.split("\r\n") if "llmbench 12/12" in part)  # a pty ends lines with \r\n
    assert line.split("\r")[-1].startswith("llmbench 12/12")  # what stays visible: the line, no dots
    assert "[100%]" in output


def test_hooks_change_requests_results_and_the_batch(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_build_request(test_case, request):
            if test_case.category == "beta":
                request["max_tokens"] = 3

        def pytest_llmbench_result(result):
            result.performance_metrics["seen_by_hook"] = True

        def pytest_llmbench_batch(batch):
            batch["team"] = "inference"
    """)
    pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-n", "2")
    betas = [r for r in stub.requests if r["body"].get("max_tokens") == 3]
    assert len(betas) == 4
    saved = json.loads((pytester.path / "llmbench_results" / "latest" / "Test_0_result.json").read_text())
    assert saved["performance_metrics"]["seen_by_hook"] is True
    assert batch_of(pytester.path / "llmbench_results" / "latest")["team"] == "inference"


def test_every_hook_also_receives_config_and_the_result_hook_its_item(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makeconftest("""
        import pytest
        from pytest_llmbench.adapter.items import LLMBenchItem

        seen = set()

        def note(name, config, item=None):
            assert isinstance(config, pytest.Config), name
            assert item is None or isinstance(item, LLMBenchItem), name
            seen.add(name)

        def pytest_llmbench_build_request(test_case, request, config):
            note("build_request", config)

        def pytest_llmbench_evaluate(test_case, result, config):
            note("evaluate", config)

        def pytest_llmbench_result(result, item, config):
            note("result", config, item)
            assert item.case.id == result.test_id

        def pytest_llmbench_progress(progress, config):
            note("progress", config)

        def pytest_llmbench_collect_metrics(sample, config):
            note("collect_metrics", config)

        def pytest_llmbench_batch(batch, config):
            note("batch", config)
            batch["hooks_seen"] = sorted(seen)
    """)
    stub.delay = 0.05
    pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                  "--llmbench-monitor", "--llmbench-monitor-interval", "0.02")
    assert batch_of(pytester.path / "llmbench_results" / "latest")["hooks_seen"] == [
        "batch", "build_request", "collect_metrics", "evaluate", "progress", "result"]


def test_batch_records_run_metadata_without_secrets(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                  "--llmbench-api-key", "sk-do-not-leak-991",
                                  "--llmbench-header", "X-Api-Key: also-secret-552")
    raw = next((pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")).read_text()
    assert "sk-do-not-leak-991" not in raw and "also-secret-552" not in raw
    run = json.loads(raw)["run"]
    assert run["endpoint"] == stub.url and run["models"] == ["stub-model"]
    assert run["options"]["api_key"] == "***"
    assert {"plugin_version", "pytest_version", "python_version", "hostname", "start_time", "end_time"} <= run.keys()
    assert json.loads(raw)["schema_version"] == 2


def test_monitor_gives_each_result_its_window_and_the_batch_a_hardware_section(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    stub.delay = 0.1
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                           "--llmbench-monitor", "--llmbench-monitor-interval", "0.05")
    result.stdout.fnmatch_lines(["hardware: GPU none (*) | CPU mean *% peak *% | memory peak * GB (*%)"])
    saved = json.loads((pytester.path / "llmbench_results" / "latest" / "Test_0_result.json").read_text())
    metrics = saved["performance_metrics"]
    assert metrics["cpu_mean_pct"] is not None and metrics["memory_peak_gb"] > 0
    assert metrics["gpu_util_mean_pct"] is None and metrics["joules_per_token"] is None
    assert metrics["duration_s"] >= 0.09
    completion = (pytester.path / "llmbench_results" / "latest" / "Test_0_completion.txt").read_text()
    assert "cpu_mean_pct" in completion
    hardware = batch_of(pytester.path / "llmbench_results" / "latest")["hardware"]
    assert hardware["gpu_devices"] == [] and hardware["gpu_unavailable_reason"]
    assert hardware["samples"] >= 5 and len(hardware["timeseries"]) >= 5
    assert result.stdout.str().count("llmbench WARNING:") == 1  # no GPU: said once


def test_under_xdist_only_the_controller_samples(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makeconftest("""
        import os
        def pytest_llmbench_collect_metrics(sample):
            sample["sampler_pid"] = os.getpid()
            with open("samplers.txt", "a") as f:
                f.write(f"{os.getpid()}\\n")

        def pytest_llmbench_build_request(test_case, request):
            with open("senders.txt", "a") as f:
                f.write(f"{os.getpid()}\\n")
    """)
    stub.delay = 0.05
    pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-n", "2",
                                  "--llmbench-monitor", "--llmbench-monitor-interval", "0.05")
    samplers = set((pytester.path / "samplers.txt").read_text().split())
    senders = set((pytester.path / "senders.txt").read_text().split())
    assert len(samplers) == 1 and len(senders) == 2 and not samplers & senders


def test_alerts_fire_once_at_their_thresholds_and_reach_the_batch(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    tests = [{"id": f"t{i:02d}", "prompt": "refuse" if i % 2 else "fine"} for i in range(24)]
    suite = write_suite(pytester.path / "suite.json", tests)
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                           "--llmbench-monitor", "--llmbench-monitor-interval", "0.05",
                                           "--llmbench-alert-memory", "1", "--llmbench-alert-error-rate", "0.3")
    out = result.stdout.str()
    assert out.count("llmbench WARNING: system memory reached") == 1
    assert sum("error rate" in line and "llmbench WARNING" in line for line in result.outlines) == 1
    alerts = batch_of(pytester.path / "llmbench_results" / "latest")["alerts"]
    assert sum("error rate" in a for a in alerts) == 1 and len(alerts) >= 2
    result.stdout.fnmatch_lines(["*warnings summary*", "*LLMBenchWarning*"])


def test_performance_monitor_fixture_measures_ordinary_tests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import sys
        from fake_nvml import FakeNvml
        sys.modules["pynvml"] = FakeNvml(count=0)  # a host without a GPU, wherever the test runs
    """)
    pytester.makepyfile(test_measure="""
        import time
        def test_busy(performance_monitor):
            cpu_before = time.process_time()
            with performance_monitor.measure() as window:
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    pass
            granted = (time.process_time() - cpu_before) / 0.5  # the share of a core the machine gave the spin
            assert window.metrics["process_cpu_mean_pct"] > 50 * granted
            assert window.metrics["gpu_util_mean_pct"] is None
    """)
    pytester.runpytest("--llmbench-monitor-interval", "0.05", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_files_that_cannot_be_written_are_warned_about_and_the_run_goes_on(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.answers["big"] = "word " * 3000  # a 15 KB answer: its files exceed the 8 KB file-size limit
    tests = [{"id": "a"}, {"id": "b", "prompt": "big"}, {"id": "c"}]
    suite = write_suite(pytester.path / "suite.json", tests)

    def limit_file_size() -> None:
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    proc = subprocess.run([sys.executable, "-m", "pytest", "--llmbench-suite", str(suite),
                           "--llmbench-endpoint", stub.url, "-p", "no:cacheprovider"],
                          cwd=pytester.path, check=False, capture_output=True, text=True, preexec_fn=limit_file_size, timeout=120)
    assert "3 passed" in proc.stdout
    assert "llmbench WARNING: could not write" in proc.stdout and "NOT WRITTEN:" in proc.stdout
    folder = pytester.path / "llmbench_results" / "latest"
    assert (folder / "Test_0_result.json").exists() and (folder / "Test_2_result.json").exists()
    assert not list(folder.glob("*.llmbench-tmp"))


def test_items_failing_their_checks_count_as_failed_in_progress_and_summary(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "suite.json", [
        {"id": "good", "expected": {"contains": "stub"}},
        {"id": "wrong", "expected": {"contains": "Paris"}},
        {"id": "refused", "prompt": "refuse"}])
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["tests 3: 1 passed, 2 failed | requests 66.7% successful*"])
    assert "llmbench 3/3 ✓1 ✗2 " in run_in_pty(pytester, "--llmbench-suite", str(suite), "--llmbench-endpoint",
                                                  stub.url)
    aggregate = batch_of(pytester.path / "llmbench_results" / "latest")["aggregate"]
    assert (aggregate["passed_tests"], aggregate["successful_tests"], aggregate["evaluation_pass_rate"]) == (1, 2, 0.5)


def test_terminal_progress_keeps_clear_of_ordinary_tests_and_pytests_percentage(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    pytester.makepyfile(test_plain="""
        import pytest
        @pytest.mark.parametrize("n", range(6))
        def test_plain(n):
            assert n != 4
    """)
    output = run_in_pty(pytester, "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "test_plain.py",
                        "-n", "2")
    visible = [re.sub(r"\x1b\[[0-9;]*m", "", line).split("\r")[-1] for line in output.split("\r\n")]
    final = [line for line in visible if line.startswith("llmbench 12/12")]
    assert final and any(line.endswith("[100%]") for line in visible)  # pytest still counts our items
    letters = [line for line in visible if line and set(line) <= {".", "F"}]
    assert "".join(letters).count("F") == 1 and "".join(letters).count(".") == 5  # ordinary tests' letters stay


def test_under_xdist_a_run_without_llmbench_items_needs_no_server(pytester: pytest.Pytester, suite: Any) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "test_plain.py", "-m", "not llmbench",
                                           "--llmbench-endpoint", "http://127.0.0.1:9/v1", "-n", "2")
    result.assert_outcomes(passed=1)  # (xdist does not report its workers' deselections)
    assert result.ret == pytest.ExitCode.OK


def test_under_xdist_an_unreachable_endpoint_stops_the_session_once(pytester: pytest.Pytester, suite: Any) -> None:
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint",
                                           "http://127.0.0.1:9/v1", "--llmbench-retries", "0", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert output.count("Cannot reach the LLM server") == 1 and "INTERNALERROR" not in output


def test_summary_tables_every_measured_metric_and_each_model(pytester: pytest.Pytester, stub: OpenAIStub, suite: Any) -> None:
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                           "--llmbench-model", "m1", "--llmbench-model", "m2")
    result.stdout.fnmatch_lines([
        "*n*mean*std*min*p50*p90*p95*p99*p99.9*max",
        "latency ms*22*",
        "model m1: 12 tests, 91.7% ok | latency p50 * p99 * ms | * tok/s",
        "model m2: 12 tests, 91.7% ok*",
    ])
    aggregate = batch_of(pytester.path / "llmbench_results" / "latest")["aggregate"]
    assert aggregate["count_latency"] == 22 and aggregate["count_ttft"] == 0
    # answers of 2 and 6 tokens: too few for a rate (MIN_RATE_TOKENS), so no tokens/s row
    assert aggregate["count_tokens_per_second"] == 0
    assert not any(line.startswith("tokens/s ") for line in result.stdout.lines)

