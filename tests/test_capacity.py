"""The capacity search (--llmbench-search) end to end against a server whose latency grows with its own count of
requests in flight, so the true capacity is known: it converges within its tolerance, --llmbench-capacity-min fails
the session as pytest counts it, over-saturation ends a level as a fail without hanging, and bad option
combinations are usage errors. The level arithmetic is also walked through on its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

from pytest_llmbench.metrics.capacity import (
    FAIL,
    PASS,
    UNDECIDED,
    Bracket,
    SearchSpec,
    against_baseline,
    judge,
    look_level,
    looks,
    next_level,
    objectives_of,
    schedule,
)
from pytest_llmbench.metrics.slo import parse_run_slos

# latency = BASE + STEP x (requests in flight, by the server's count, itself included): level c answers in
# 20 + 30 c ms; the limit sits halfway between level 10 (320 ms) and 11 (350 ms), 15 ms from each.
BASE, STEP, LIMIT_MS, TRUE_CAPACITY = 0.02, 0.03, 335, 10


@pytest.fixture
def stub(load_stub: OpenAIStub) -> OpenAIStub:
    load_stub.delay, load_stub.delay_per_active = BASE, STEP
    return load_stub


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: str, tests: int = 2) -> pytest.RunResult:
    suite = write_suite(pytester.path / "cap.json", [{"prompt": f"question {n}"} for n in range(tests)])
    return pytester.runpytest("--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "-p",
                              "no:cacheprovider", "--llmbench-retries", "0", *args)


def capacity(pytester: pytest.Pytester) -> dict[str, Any]:
    [path] = (pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")
    found: dict[str, Any] = json.loads(path.read_text())["capacity"]
    return found


def test_the_search_converges_on_the_servers_true_capacity(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    result = run(pytester, stub, "--llmbench-search", "concurrency", "--llmbench-slo", f"latency_p50={LIMIT_MS}ms")
    result.assert_outcomes(passed=2)  # the tests run after the search; its SLOs are its objectives, not gates
    found = capacity(pytester)
    low, high = found["capacity"], found["upper"]
    assert found["stopped"] == "converged" and found["target"] == 0.5
    assert 0.8 * TRUE_CAPACITY <= low <= TRUE_CAPACITY  # a busy machine's overhead may cost a level, never add one
    assert high > TRUE_CAPACITY and (high - low <= 1 or high - low <= 0.1 * low)  # within the tolerance
    levels = [p["level"] for p in found["probes"]]
    assert levels[:4] == [1, 2, 4, 8] and len(set(levels)) == len(levels)  # doubling, then bisection, no repeats
    for probe in found["probes"]:  # each verdict agrees with the server's own rule where the margin is wide
        if probe["level"] <= TRUE_CAPACITY - 2 or probe["level"] >= TRUE_CAPACITY + 1:
            assert probe["passed"] is (probe["level"] <= TRUE_CAPACITY), probe
        assert probe["counted"] >= 4 and probe["warmup"] <= probe["level"]
        assert probe["warmup"] == probe["level"] or not probe["passed"]  # one wave of warm-up, not counted
    # every request the search reports reached the server: its totals are the server's count
    assert found["requests"] + 2 == len(stub.loads) and max(stub.loads) <= max(levels)
    result.stdout.fnmatch_lines(["capacity search (concurrency) within latency_p50 <= 335 ms*",
                                 "*c8 pass: attainment 100.0%*", "capacity search (concurrency): target 50.0%*",
                                 f"capacity: concurrency {low:g}, below {high:g} (the lowest level that failed); * requests; "
                                 "converged within the tolerance"])


def test_capacity_min_fails_the_session_as_pytest_counts_it(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    args = ("--llmbench-search", "concurrency", "--llmbench-slo", f"latency_p50={LIMIT_MS}ms",
            "--llmbench-search-max", "4")  # 1, 2, 4 pass; the cap ends the search
    failed = run(pytester, stub, *args, "--llmbench-capacity-min", "6")
    failed.assert_outcomes(passed=2, failed=1)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["capacity: concurrency 4; 3 probes, * requests; every level up to "
                                 "--llmbench-search-max passed*",
                                 "gate FAILED: capacity (concurrency) found 4: below --llmbench-capacity-min 6",
                                 "FAILED llmbench::capacity[[]min[]] - *"])
    found = capacity(pytester)
    assert (found["capacity"], found["upper"], found["stopped"]) == (4, None, "max_level")
    assert found["minimum"] == 6 and found["minimum_passed"] is False
    passed = run(pytester, stub, *args, "--llmbench-capacity-min", "4")
    passed.assert_outcomes(passed=2)
    assert passed.ret == pytest.ExitCode.OK and capacity(pytester)["minimum_passed"] is True


def test_a_rate_search_paces_each_level_at_its_rate(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """Rate levels are open-loop arrivals (Poisson, seeded) at the level's rate, by the server's own arrival times."""
    stub.delay, stub.delay_per_active = 0.05, 0.0
    run(pytester, stub, "--llmbench-search", "rate", "--llmbench-search-start", "4", "--llmbench-search-max", "8",
        "--llmbench-slo", "latency_p50=1s").assert_outcomes(passed=2)
    found = capacity(pytester)
    assert [(p["label"], p["verdict"]) for p in found["probes"]] == [("rate4", PASS), ("rate8", PASS)]
    assert (found["capacity"], found["stopped"]) == (8, "max_level")
    with stub._lock:
        arrived = [request["at"] for request in stub.requests if request["path"].endswith("/completions")]
    first = found["probes"][0]["requests"]
    for rate, times in ((4, arrived[:first]), (8, arrived[first:found["requests"]])):
        measured = (len(times) - 1) / (times[-1] - times[0])
        assert rate / 2.5 < measured < rate * 2.5, (rate, measured)  # paced, not sent at once (Poisson: wide bounds)


def test_an_over_saturated_level_fails_at_once_and_never_hangs(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """A rate the server cannot take: its requests pile up to the ceiling of requests in flight (3), and the level
    fails as over-saturated instead of queueing without bound; the server never sees more than the ceiling."""
    stub.delay, stub.delay_per_active = 1.0, 0.0
    result = run(pytester, stub, "--llmbench-search", "rate", "--llmbench-search-start", "20",
                 "--llmbench-concurrency", "3", "--llmbench-slo", "latency_p90=5s", "--llmbench-search-probes", "2",
                 "--llmbench-capacity-min", "1", tests=1)
    result.assert_outcomes(passed=1, failed=1)
    found = capacity(pytester)
    assert [(p["level"], p["verdict"], p["over_saturated"]) for p in found["probes"]] == [
        (20, FAIL, True), (10, FAIL, True)]
    assert found["capacity"] is None and found["stopped"] == "max_probes"
    assert max(stub.loads) <= 3  # the ceiling held: the queue stayed in the client, bounded
    result.stdout.fnmatch_lines(["*rate20 FAIL (over-saturated: 3 requests in flight*"])


def test_requests_in_flight_past_the_latency_limit_fail_a_level_before_they_end(pytester: pytest.Pytester,
                                                                               stub: OpenAIStub) -> None:
    """A server far slower than the limit: the level is failed by the requests still in flight past it, long
    before any answer (or the level's 30 s cap) comes."""
    stub.delay, stub.delay_per_active = 2.0, 0.0
    result = run(pytester, stub, "--llmbench-search", "concurrency", "--llmbench-search-start", "4",
                 "--llmbench-search-warmup", "0", "--llmbench-slo", "latency_p90=200ms", "--llmbench-search-probes",
                 "1", "--llmbench-search-seconds", "30", tests=1)
    result.assert_outcomes(passed=1)
    [probe] = capacity(pytester)["probes"]
    assert probe["verdict"] == FAIL and probe["stuck"] >= 4 and probe["met"] == 0
    assert probe["duration_s"] < 2.0  # decided while the server still held every answer (by its 2 s delay)


def test_an_undecided_level_fails_unless_slo_undecided_pass(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """Half the requests are slow by the server's own script: a p50 objective's attainment sits on its target, so
    the level is still undecided at its cap of 10 requests; the search takes it as a fail, with a warning, unless
    --llmbench-slo-undecided pass."""
    stub.delay, stub.delay_per_active, stub.delays = 0.0, 0.0, {"question 1": 0.6}
    args = ("--llmbench-search", "concurrency", "--llmbench-slo", "latency_p50=400ms", "--llmbench-search-max", "1",
            "--llmbench-search-requests", "10", "--llmbench-search-warmup", "0", "-W", "default")
    result = run(pytester, stub, *args)
    [probe] = capacity(pytester)["probes"]
    assert (probe["verdict"], probe["passed"], probe["counted"], probe["met"]) == ("undecided", False, 10, 5)
    assert probe["reason"] == "undecided at the requests cap" and capacity(pytester)["capacity"] is None
    result.stdout.fnmatch_lines(["*capacity search: level c1 undecided at its cap*taken as a fail*"])
    run(pytester, stub, *args, "--llmbench-slo-undecided", "pass")
    found = capacity(pytester)
    assert found["probes"][0]["verdict"] == "undecided" and found["capacity"] == 1


def test_the_capacity_is_set_beside_the_baselines(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    args = ("--llmbench-search", "concurrency", "--llmbench-slo", f"latency_p50={LIMIT_MS}ms", "--llmbench-search-max",
            "4", "--llmbench-search-start", "2")
    run(pytester, stub, *args).assert_outcomes(passed=2)  # 2 and 4 pass: capacity at least 4
    stub.delay_per_active = 0.12  # level c now answers in 20 + 120 c ms: 2 passes, 3 and 4 fail
    result = run(pytester, stub, *args, "--llmbench-compare", "latest")
    found = capacity(pytester)
    assert (found["capacity"], found["upper"]) == (2, 3)
    assert found["baseline"] == {"capacity": 4, "upper": None, "change": "lower"}
    result.stdout.fnmatch_lines(["capacity against the baseline: 4 -> 2 (below 3): lower"])


def test_a_streamed_objective_without_streaming_stops_before_the_first_level(pytester: pytest.Pytester,
                                                                             stub: OpenAIStub) -> None:
    result = run(pytester, stub, "--llmbench-search", "concurrency", "--llmbench-slo", "ttft_p50=300ms")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and stub.loads == []  # nothing sent
    result.stdout.fnmatch_lines(["*--llmbench-search: ttft_p50 is measured only on streamed answers*"])
    run(pytester, stub, "--llmbench-search", "concurrency", "--llmbench-slo", "ttft_p50=300ms", "--llmbench-stream",
        "--llmbench-search-max", "2").assert_outcomes(passed=2)
    assert capacity(pytester)["capacity"] == 2  # streamed, every TTFT is measured: 1 and 2 pass


def test_the_report_shows_the_probes_table_and_charts(pytester: pytest.Pytester, stub: OpenAIStub,
                                                      open_report: Any) -> None:
    from browser import CHART_MARKS
    from report_sessions import report_file

    run(pytester, stub, "--llmbench-search", "concurrency", "--llmbench-slo", f"latency_p50={LIMIT_MS}ms",
        "--llmbench-search-max", "4").assert_outcomes(passed=2)
    report = open_report(report_file(pytester))
    assert report.problems == []
    assert report.js("document.querySelector('#capacity h3').textContent").startswith("capacity: concurrency 4; 3 probes")
    rows = report.js("[...document.querySelectorAll('#capacity tbody tr')].map(r => r.cells[1].textContent + ' ' + "
                     "r.cells[2].textContent)")
    assert rows == ["c1 pass", "c2 pass", "c4 ★ pass"]
    charts = {c["name"]: c for c in report.js(CHART_MARKS)}
    assert charts["Attainment per level, with its interval"]["marks"] == [3]  # each probe's point; its interval
    assert charts["The levels in the order probed"]["marks"] == [3]  # and the target are marks of their own
    assert charts["Attainment per level, with its interval"]["painted"] > 200


def test_a_level_with_nothing_answered_by_its_time_cap_fails_as_over_saturated(pytester: pytest.Pytester,
                                                                              stub: OpenAIStub) -> None:
    """A TTFT objective has no whole-request limit to count requests in flight against: a server that holds every
    answer past the level's 1 s cap ends the level there, failed as over-saturated, not waited for."""
    stub.delay, stub.delay_per_active = 2.5, 0.0
    result = run(pytester, stub, "--llmbench-stream", "--llmbench-search", "concurrency", "--llmbench-search-start",
                 "2", "--llmbench-search-warmup", "0", "--llmbench-slo", "ttft_p50=300ms", "--llmbench-search-seconds",
                 "1s", "--llmbench-search-probes", "1", tests=1)
    result.assert_outcomes(passed=1)
    [probe] = capacity(pytester)["probes"]
    assert (probe["verdict"], probe["over_saturated"], probe["counted"]) == (FAIL, True, 0)
    assert probe["reason"] == "over-saturated: at the seconds cap 2 requests were in flight and 0 answered"
    assert 1.0 <= probe["duration_s"] < 2.5 and len(stub.loads) == 3  # ended at its cap; the server saw 2 + the test


def test_ctrl_c_during_the_search_stops_it_at_once(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """The requests in flight are cut, nothing more is sent, and the session ends as interrupted without waiting
    for the server's 30 s answers (their threads would hold the process at its exit)."""
    stub.delay, stub.delay_per_active = 30.0, 0.0
    suite = write_suite(pytester.path / "cap.json", [{"prompt": "question"}])
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
               "-p", "no:cacheprovider", "--llmbench-search", "concurrency", "--llmbench-search-start", "4",
               "--llmbench-slo", "ttft_p50=1s", "--llmbench-stream"]
    proc = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(stub.loads) < 4 and time.monotonic() < deadline:  # the first level's four requests are in
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == pytest.ExitCode.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(stub.loads) == 4  # nothing sent after the interrupt


@pytest.mark.parametrize(("args", "message"), [
    (("--llmbench-search", "concurrency"), "*--llmbench-search finds the highest load within the run SLOs*"),
    (("--llmbench-search", "concurrency", "--llmbench-slo", "latency_mean=1s"),
     "*run SLO latency_mean <= 1000 ms cannot be judged request by request*"),
    (("--llmbench-search", "concurrency", "--llmbench-slo", "success_rate=0.9"), "*cannot be judged request by*"),
    (("--llmbench-search", "users", "--llmbench-slo", "latency_p90=1s"),
     "*--llmbench-search: expected concurrency or rate, got 'users'*"),
    (("--llmbench-search", "rate", "--llmbench-slo", "latency_p90=1s", "--llmbench-sweep", "rate=1,2"),
     "*--llmbench-search chooses its own levels: drop --llmbench-sweep*"),
    (("--llmbench-search", "rate", "--llmbench-slo", "latency_p90=1s", "--llmbench-resume"),
     "*--llmbench-search cannot be resumed: drop --llmbench-resume*"),
    (("--llmbench-search", "rate", "--llmbench-slo", "latency_p90=1s", "--llmbench-search-start", "8",
      "--llmbench-search-max", "4"), "*--llmbench-search-start 8 is above --llmbench-search-max 4*"),
    (("--llmbench-capacity-min", "4"), "*--llmbench-capacity-min gates the capacity that --llmbench-search finds*"),
    (("--llmbench-search", "concurrency", "--llmbench-slo", "ttft_p99=300ms", "--llmbench-search-warmup", "few"),
     "*--llmbench-search-warmup: expected a number of requests or 'wave', got 'few'*"),
    (("--llmbench-search", "concurrency", "--llmbench-slo", "ttft_p99=300ms", "-n", "2"),
     "*--llmbench-search drives the whole load from one process: drop -n/--dist (xdist)*"),
])
def test_bad_option_combinations_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...],
                                                   message: str) -> None:
    suite = write_suite(pytester.path / "cap.json", [{"prompt": "question"}])
    result = pytester.runpytest("--llmbench-endpoint", "http://127.0.0.1:9/v1", "--llmbench-suite", str(suite),
                                "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


# -- the arithmetic on its own ---------------------------------------------------------------------------------


def search(spec: SearchSpec, true_capacity: float) -> tuple[Bracket, list[float], str]:
    """The levels a search probes against a server that passes exactly the levels up to ``true_capacity``."""
    bracket, levels = Bracket(), list[float]()
    while True:
        level, stopped = next_level(spec, bracket, len(levels))
        if level is None:
            return bracket, levels, stopped
        levels.append(level)
        bracket = bracket.after(level, level <= true_capacity)


@pytest.mark.parametrize("kind", ["concurrency", "rate"])
@pytest.mark.parametrize("true_capacity", [1, 3, 7.5, 21, 100, 700])
def test_doubling_then_bisection_brackets_the_capacity_within_the_tolerance(kind: str, true_capacity: float) -> None:
    spec = SearchSpec(kind, start=1, tolerance=0.1, max_level=1024, max_probes=40)
    bracket, levels, stopped = search(spec, true_capacity)
    assert stopped == "converged" and bracket.passed is not None and bracket.failed is not None
    assert bracket.passed <= true_capacity < bracket.failed
    assert bracket.failed - bracket.passed <= max(0.1 * bracket.passed, 1 if kind == "concurrency" else 0.01)
    assert len(levels) <= 2 * 11  # log2 of the range up, log2 of 1/tolerance down


def test_the_search_stops_at_its_caps_and_when_nothing_passes() -> None:
    assert search(SearchSpec("concurrency", 4, 0.1, 16, 40), 1000)[1:] == ([4, 8, 16], "max_level")
    bracket, levels, stopped = search(SearchSpec("concurrency", 4, 0.1, 1024, 40), 0)
    assert (levels, stopped, bracket.passed) == ([4, 2, 1], "none_passed", None)
    assert search(SearchSpec("rate", 2, 0.1, 1024, 40), 0)[1:] == ([2, 1, 0.5, 0.25, 0.125], "none_passed")
    assert search(SearchSpec("concurrency", 1, 0.1, 1024, 3), 50)[1:] == ([1, 2, 4], "max_probes")


def test_a_level_is_decided_once_its_wilson_interval_clears_the_target() -> None:
    assert judge(3, 3, 0.5, 0.95)[0] == UNDECIDED  # 3 of 3: [43.9%, 100%] still reaches below a half
    assert judge(4, 4, 0.5, 0.95)[0] == PASS
    assert judge(0, 4, 0.5, 0.95)[0] == FAIL
    assert judge(34, 34, 0.9, 0.95)[0] == UNDECIDED and judge(35, 35, 0.9, 0.95)[0] == PASS  # p90 needs 35
    verdict, (low, high) = judge(45, 50, 0.9, 0.95)
    assert verdict == UNDECIDED and low is not None and high is not None and low < 0.9 < high


def test_a_capacity_changed_only_when_the_brackets_do_not_overlap() -> None:
    now = {"kind": "concurrency", "objectives": ["latency_p50 <= 300 ms"], "capacity": 20.0, "upper": 22.0}
    for before, change in (((24.0, 26.0), "lower"), ((22.0, 24.0), "lower"), ((21.0, 23.0), "unchanged"),
                           ((12.0, 14.0), "higher"), ((16.0, None), "unchanged"), ((None, 2.0), "higher")):
        found = against_baseline(now, {**now, "capacity": before[0], "upper": before[1]})
        assert found is not None and found["change"] == change, before
    other = against_baseline(now, {**now, "kind": "rate"})
    assert other is not None and other["change"].startswith("not comparable: the baseline searched rate")
    assert against_baseline(now, None) is None


def test_looks_double_and_share_the_confidence_out() -> None:
    assert looks(8, 1000) == [8, 16, 32, 64, 128, 256, 512, 1000] and looks(1, 10) == [1, 2, 4, 8, 10]
    at = look_level(0.95, 8)
    assert at == pytest.approx(1 - 0.05 / 9)  # eight looks and one at a time cap share the 5 %
    assert judge(128, 128, 0.95, at)[0] == UNDECIDED and judge(256, 256, 0.95, at)[0] == PASS  # a p95 at its looks
    assert judge(0, 8, 0.5, at)[0] == FAIL
    points, at = schedule(8, 1000, 0.95, 0.95)  # and a look where a level whose every request attains can pass
    assert points == [8, 16, 32, 64, 128, 150, 256, 512, 1000] and at == pytest.approx(1 - 0.05 / 10)
    assert judge(150, 150, 0.95, at)[0] == PASS and judge(149, 149, 0.95, at)[0] == UNDECIDED


def test_each_percentile_slo_is_a_per_request_objective_with_its_share() -> None:
    latency, ttft = objectives_of(parse_run_slos(["latency_p90=2s", "ttft_p99=300ms"]))
    assert (latency.field, latency.limit, latency.share, latency.whole_request) == ("execution_time", 2.0, 0.9, True)
    assert (ttft.field, ttft.limit, ttft.share, ttft.whole_request, ttft.arrival_timed, ttft.streamed) == (
        "ttft", 0.3, 0.99, False, True, True)

