"""Load runs end to end: requests in flight from one process and from xdist workers, warm-up, duration, ramp,
repeat, sweep and its knee, stops with requests in flight, and which per-test files are written."""

from __future__ import annotations

import gc
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from terminal_pty import run_in_pty


@pytest.fixture
def stub(load_stub: OpenAIStub) -> OpenAIStub:
    return load_stub


def suite(pytester: pytest.Pytester, count: int, **fields: Any) -> Path:
    return write_suite(pytester.path / "load.json", [{"prompt": f"question {n}", **fields} for n in range(count)])


def run(pytester: pytest.Pytester, stub: OpenAIStub, count: int, *args: str,
        subprocess: bool = False) -> pytest.RunResult:
    argv = ("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite(pytester, count)),
            "-p", "no:cacheprovider", *args)
    return pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)


def batch(pytester: pytest.Pytester) -> dict[str, Any]:
    [path] = (pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def load_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("llmbench-")
            and t.name not in ("llmbench-deadline", "llmbench-reader")]  # the process's own, kept for the next run


def test_one_process_keeps_n_requests_in_flight(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.gather = 8  # the server holds each wave until 8 are in: peak is the client's doing, not the machine's speed
    run(pytester, stub, 16, "--llmbench-concurrency", "8").assert_outcomes(passed=16)
    assert stub.peak == 8  # eight connections answered at once, from one pytest process
    data = batch(pytester)
    assert data["load"]["concurrency"] == 8 and len(data["tests"]) == 16
    buckets = data["timeline"]["buckets"]
    assert max(b["in_flight"] for b in buckets) > 4 and sum(b["sent"] for b in buckets) == 16
    assert load_threads() == []  # the pool and the sender are gone with the session


def test_what_collection_built_is_frozen_while_a_load_run_sends_and_unfrozen_after(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """No full garbage collection walks the collected session during a load run (its pause would land in the
    TTFTs of every answer arriving meanwhile); an ordinary run leaves the collector alone."""
    pytester.makepyfile(test_gc="import gc\n\ndef test_frozen(record_property):\n"
                                "    record_property('frozen', gc.get_freeze_count())\n")
    for load, expect_frozen in ((("--llmbench-concurrency", "4"), True), ((), False)):
        result = run(pytester, stub, 4, str(pytester.path / "test_gc.py"), "--junitxml=gc.xml", *load)
        result.assert_outcomes(passed=5)
        found = re.search(r'name="frozen" value="(\d+)"', (pytester.path / "gc.xml").read_text())
        assert found is not None
        frozen = int(found[1])
        assert (frozen > 1000) is expect_frozen
        assert gc.get_freeze_count() == 0  # the in-process session unfroze what it froze


def test_without_the_option_one_request_at_a_time(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.05
    run(pytester, stub, 4).assert_outcomes(passed=4)
    assert stub.peak == 1


def test_xdist_workers_each_carry_their_share(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay, stub.gather = 0.3, 6  # waves of six: both workers' shares (3 + 3), however late one starts
    result = run(pytester, stub, 36, "--llmbench-concurrency", "6", "-n", "2", subprocess=True)
    result.assert_outcomes(passed=36)
    assert stub.peak == 6  # both workers' shares at once, never more than the session's
    rows = batch(pytester)["tests"]
    assert {row["worker"] for row in rows} == {"gw0", "gw1"} and all(row["host"] for row in rows)


def test_repeat_gives_each_run_its_own_node_id_and_files(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.0
    result = run(pytester, stub, 2, "--llmbench-repeat", "3", "--llmbench-concurrency", "4", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*load.json::t0?r1? PASSED*", "*load.json::t1?r1? PASSED*",  # round by round
                                 "*load.json::t0?r2? PASSED*", "*load.json::t1?r3? PASSED*"])
    assert len(list((pytester.path / "llmbench_results" / "latest").glob("*_result.json"))) == 6


def test_warmup_requests_are_sent_first_and_kept_out_of_the_statistics(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.0
    run(pytester, stub, 3, "--llmbench-warmup", "5", "--llmbench-concurrency", "2").assert_outcomes(passed=3)
    assert len(stub.requests) == 8
    data = batch(pytester)
    warmup = data["load"]["warmup"]
    assert (warmup["requests"], warmup["errors"]) == (5, 0)
    assert warmup["start_s"] <= warmup["end_s"] <= 0.01  # before the first measured request (the report shades it)
    assert data["aggregate"]["total_tests"] == 3 and len(data["tests"]) == 3


def test_duration_stops_sending_and_skips_what_was_not_sent(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.2
    result = run(pytester, stub, 12, "--llmbench-concurrency", "1", "--llmbench-duration", "0.5", "-rs")
    outcomes = result.parseoutcomes()
    assert 1 <= outcomes["passed"] <= 4 and outcomes["passed"] + outcomes["skipped"] == 12
    result.stdout.fnmatch_lines(["*--llmbench-duration passed before this test's request was sent*"])
    assert len(stub.requests) == outcomes["passed"]
    data = batch(pytester)
    assert data["load"]["duration_skipped"] == outcomes["skipped"] and not data["partial"]


def test_a_ramp_raises_the_concurrency_step_by_step(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay, stub.gather = 0.2, 8  # held until eight are in: the ramp must get there, however busy the machine
    run(pytester, stub, 24, "--llmbench-concurrency", "8", "--llmbench-ramp", "1").assert_outcomes(passed=24)
    arrivals = sorted(r["at"] for r in stub.requests)
    assert arrivals[7] - arrivals[0] > 0.3  # without a ramp the first eight leave together
    assert stub.peak == 8


def test_a_request_rate_paces_arrivals_and_records_schedule_lag(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.0
    run(pytester, stub, 30, "--llmbench-request-rate", "60", "--llmbench-concurrency", "8").assert_outcomes(passed=30)
    data = batch(pytester)
    assert data["load"]["request_rate"] == 60
    assert 20 < data["load"]["achieved_rate"] < 180  # Poisson: 30 arrivals vary; the model's statistics are unit-tested
    assert all(row["schedule_lag"] is not None and row["schedule_lag"] < 0.5 for row in data["tests"])
    assert data["load"]["schedule_lag_ms"]["count"] == 30


def test_a_sweep_runs_each_level_and_names_the_highest_within_the_slos(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    # 0.5 s per request in flight, by the server's own count: c1 answers in 0.5 s, c4 in up to 2 s. The SLO sits
    # 0.7 s above c1's figure, so a busy machine's overhead cannot move the knee.
    stub.delay, stub.delay_per_active = 0.0, 0.5
    result = run(pytester, stub, 8, "--llmbench-sweep", "concurrency=1,4", "--llmbench-slo", "latency_p99=1200ms",
                 "-v")
    result.assert_outcomes(passed=16)
    assert result.ret == pytest.ExitCode.OK  # the SLOs name the knee; a level past it does not fail the run
    result.stdout.fnmatch_lines(["*load.json::t0?c1? PASSED*", "*load.json::t7?c4? PASSED*",
                                 "load: sweep concurrency c1,c4*", "sweep:", "*c1*yes", "*c4*NO", "knee: c1*"])
    sweep = batch(pytester)["sweep"]
    assert [(row["level"], row["requests"], row["meets_slos"]) for row in sweep["levels"]] == [
        ("c1", 8, True), ("c4", 8, False)]
    assert sweep["levels"][1]["p99_latency_ms"] > 1200 and sweep["knee"] == "c1" and sweep["kind"] == "concurrency"


def test_x_stops_with_requests_in_flight_and_keeps_every_answer(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.status = {"question 1": 500}
    result = run(pytester, stub, 20, "--llmbench-concurrency", "5", "-x", "--llmbench-retries", "0")
    result.assert_outcomes(passed=1, failed=1)
    data = batch(pytester)
    assert data["partial"]
    # nothing lost: every request the server saw is a row, or was cut in flight (it may not have arrived yet)
    assert len(data["tests"]) <= len(stub.requests) <= len(data["tests"]) + data["load"]["cancelled_in_flight"]
    assert len(stub.requests) < 20  # nothing sent after the stop
    assert load_threads() == []


def test_test_files_none_writes_only_the_batch(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.0
    run(pytester, stub, 3, "--llmbench-test-files", "none").assert_outcomes(passed=3)
    files = [p.name for p in (pytester.path / "llmbench_results" / "latest").iterdir()]
    assert [n for n in files if n.endswith(("_result.json", "_completion.txt"))] == []
    assert len([n for n in files if n.startswith("batch_results_")]) == 1


def test_test_files_failed_writes_only_the_failures(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay, stub.status = 0.0, {"question 1": 500}
    run(pytester, stub, 3, "--llmbench-test-files", "failed", "--llmbench-retries", "0").assert_outcomes(
        passed=2, failed=1)
    assert sorted(p.name for p in (pytester.path / "llmbench_results" / "latest").glob("*_result.json")) == ["Test_1_result.json"]


def test_bad_load_options_are_usage_errors(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    for args, words in ((("--llmbench-sweep", "users=1,2"), "expected concurrency=1,4,16"),
                        (("--llmbench-request-rate", "fast"), "expected requests per second"),
                        (("--llmbench-test-files", "some"), "expected one of all, failed, none")):
        result = run(pytester, stub, 1, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{words}*"])


def test_the_progress_line_shows_requests_in_flight_and_offered_against_sent_rate(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.0
    result = run(pytester, stub, 6, "--llmbench-request-rate", "100", "--llmbench-concurrency", "3")
    result.assert_outcomes(passed=6)
    on_terminal = run_in_pty(pytester, "--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite(pytester, 6)),
                             "--llmbench-request-rate", "100", "--llmbench-concurrency", "3")
    assert re.search(r"llmbench 6/6 .* \| in flight \S+ \| sent [\d.]+/100 req/s", on_terminal), on_terminal


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_with_requests_in_flight_writes_a_partial_batch_with_every_answer(pytester: pytest.Pytester, stub: OpenAIStub, signum: Any) -> None:
    stub.delay = 0.3
    path = suite(pytester, 40)
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(path), "--llmbench-endpoint", stub.url,
               "-p", "no:cacheprovider", "--llmbench-concurrency", "6"]
    proc = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while stub.answered < 8 and time.monotonic() < deadline:  # some answered, six more on the wire
            time.sleep(0.01)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == pytest.ExitCode.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
    data = batch(pytester)
    assert data["partial"] and len(data["tests"]) >= 8
    assert len(data["tests"]) <= len(stub.requests) <= len(data["tests"]) + data["load"]["cancelled_in_flight"]
    assert len(stub.requests) < 40


def test_x_under_xdist_takes_back_what_the_workers_have_not_started(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay, stub.status = 0.3, {"question 0": 500}
    result = run(pytester, stub, 60, "--llmbench-concurrency", "4", "-n", "2", "-x", "--llmbench-retries", "0",
                 subprocess=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # xdist's way of saying -x stopped it
    assert len(stub.requests) < 25  # each worker holds 30; without the take-back the other one runs all of its
    data = batch(pytester)
    assert data["partial"] and len(data["tests"]) <= len(stub.requests)


def test_a_build_request_hook_that_raises_fails_only_its_own_item_under_load(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.0
    pytester.makeconftest("""
        def pytest_llmbench_build_request(test_case, request, config):
            if test_case.id == "t1":
                raise RuntimeError("no body for t1")
    """)
    result = run(pytester, stub, 3, "--llmbench-concurrency", "3")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: no body for t1*"])
    assert len(stub.requests) == 2
