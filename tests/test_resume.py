"""--llmbench-resume end to end: a real session killed by SIGINT, SIGTERM or SIGKILL at a moment it chooses
(after N answers are in the journal), then resumed in the same folder against the same stub: every test recorded
exactly once, none sent twice but those in flight at the kill, the batch over the union, the outcomes replayed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from run_files import results_by_id

from pytest_llmbench.session.journal import JOURNAL

RESULTS = "llmbench_results"


@pytest.fixture
def stub(load_stub: OpenAIStub) -> OpenAIStub:
    return load_stub


def suite(pytester: pytest.Pytester, count: int, **fields: Any) -> Path:
    return write_suite(pytester.path / "r.json", [{"id": f"t{n:02d}", "prompt": f"question {n}", **fields}
                                                   for n in range(count)])


def base_args(pytester: pytest.Pytester, stub: OpenAIStub, path: Path, *extra: str) -> list[str]:
    return ["--llmbench-suite", str(path), "--llmbench-endpoint", stub.url,
            "-p", "no:cacheprovider", *extra]


def journal_lines(pytester: pytest.Pytester) -> int:
    """Result lines in the run's journal (a torn last line is not one)."""
    found = list((pytester.path / RESULTS).glob(f"*/{JOURNAL}"))
    lines = found[0].read_bytes().split(b"\n")[:-1] if found else []
    return sum(1 for line in lines if line.startswith(b'{"kind": "result"'))


def interrupt(pytester: pytest.Pytester, args: list[str], signum: int, after: int) -> int:
    """Start a session in its own process group, signal it once ``after`` results are in its journal (SIGKILL
    goes to the whole group, as a preempted node or a killed container would); returns its exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=pytester.path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while journal_lines(pytester) < after and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, "the session ended before it could be interrupted"
        if signum == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signum)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def batches(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    [folder] = [p for p in (pytester.path / RESULTS).iterdir() if p.is_dir() and not p.is_symlink()]
    return [json.loads(p.read_text()) for p in sorted(folder.glob("batch_results_*.json"))]


def sends(stub: OpenAIStub) -> Counter[str]:
    return Counter(r["body"]["prompt"] for r in stub.requests)


def settle(stub: OpenAIStub) -> None:
    """Requests the killed session had on the wire reach the stub (it counts a request as it arrives)."""
    seen, deadline = -1, time.monotonic() + 5
    while seen != len(stub.requests) and time.monotonic() < deadline:
        seen = len(stub.requests)
        time.sleep(0.5)


MODES = {"one process": (), "xdist -n 2": ("-n", "2"), "concurrency 4": ("--llmbench-concurrency", "4")}


@pytest.mark.parametrize(("signum", "mode"), [
    (signal.SIGINT, "one process"), (signal.SIGTERM, "xdist -n 2"), (signal.SIGINT, "concurrency 4"),
    (signal.SIGKILL, "one process"), (signal.SIGKILL, "xdist -n 2"), (signal.SIGKILL, "concurrency 4"),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else v.replace(" ", "-"))
def test_an_interrupted_run_resumes_with_every_test_recorded_once_and_none_sent_twice_but_those_in_flight(
        pytester: pytest.Pytester, stub: OpenAIStub, signum: Any, mode: Any) -> None:
    stub.delay = 0.15
    path = suite(pytester, 30)
    args = base_args(pytester, stub, path, *MODES[mode])
    status = interrupt(pytester, args, signum, after=6)
    assert status == (-signal.SIGKILL if signum == signal.SIGKILL else pytest.ExitCode.INTERRUPTED)
    settle(stub)
    before = sends(stub)
    recorded = journal_lines(pytester)
    assert 6 <= recorded < 30

    result = pytester.runpytest(*args, "--llmbench-resume", "-v")

    result.assert_outcomes(passed=30)
    result.stdout.fnmatch_lines([f"*resumed {recorded} recorded results of *; {30 - recorded} results from this *"])
    assert result.stdout.str().count("PASSED (resumed)") == recorded
    [*_, batch] = batches(pytester)
    assert batch["partial"] is False
    assert sorted(row["test_id"] for row in batch["tests"]) == [f"t{n:02d}" for n in range(30)]  # each once
    resumed = [row for row in batch["tests"] if row.get("resumed")]
    assert len(resumed) == recorded == batch["resumed_from"]["kept"]
    assert batch["aggregate"]["total_tests"] == 30 and batch["aggregate"]["passed_tests"] == 30
    total = sends(stub)
    twice = {prompt for prompt, n in total.items() if n > 1}
    assert all(n <= 2 for n in total.values()) and set(total) == {f"question {n}" for n in range(30)}
    resumed_prompts = {f"question {int(row['test_id'][1:])}" for row in resumed}
    # sent again: exactly what the first session sent and did not record (on the wire, or answered but not yet
    # recorded, at the kill); never a recorded one
    assert twice == set(before) - resumed_prompts
    if mode == "one process":
        assert len(twice) <= 1
    if mode == "one process" and signum != signal.SIGKILL:  # per-test files: one per test, whole
        assert len(results_by_id(pytester.path / RESULTS)) == 30


def test_test_files_none_resumes_from_the_journal_alone(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.1
    args = base_args(pytester, stub, suite(pytester, 20), "--llmbench-test-files", "none")
    interrupt(pytester, args, signal.SIGKILL, after=5)
    assert not list((pytester.path / RESULTS).rglob("*_result.json"))
    recorded = journal_lines(pytester)
    result = pytester.runpytest(*args, "--llmbench-resume")
    result.assert_outcomes(passed=20)
    [batch] = batches(pytester)  # the killed session wrote none
    assert len(batch["tests"]) == 20 and sum(bool(r.get("resumed")) for r in batch["tests"]) == recorded
    assert batch["resumed_from"]["sessions"][0]["ended"] == "killed"


def test_a_sweep_resumes_at_the_level_that_was_cut_and_runs_it_whole(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.1
    args = base_args(pytester, stub, suite(pytester, 8), "--llmbench-sweep", "concurrency=1,2")
    interrupt(pytester, args, signal.SIGKILL, after=10)  # level c1 (8 results) done, c2 cut after 2 or more
    settle(stub)
    first = len(stub.requests)
    assert first >= 10

    result = pytester.runpytest(*args, "--llmbench-resume")

    result.assert_outcomes(passed=16)
    [batch] = batches(pytester)
    rows = batch["tests"]
    assert sorted(r["level"] for r in rows if r.get("resumed")) == ["c1"] * 8  # the whole first level kept
    assert sorted(r["level"] for r in rows if not r.get("resumed")) == ["c2"] * 8  # the cut one rerun whole
    assert Counter(r["level"] for r in rows) == {"c1": 8, "c2": 8}
    assert len(stub.requests) == first + 8  # c2's all sent again, nothing of c1
    levels = batch["sweep"]["levels"]
    assert [level["requests"] for level in levels] == [8, 8]
    assert all(level["achieved_rate"] for level in levels)  # the resumed level keeps its own send times
    assert batch["resumed_from"]["recorded"] > batch["resumed_from"]["kept"] == 8


def test_recorded_failures_fail_again_without_a_request_and_the_exit_status_says_so(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.status = {"question 1": 500}
    args = base_args(pytester, stub, suite(pytester, 6), "--llmbench-retries", "0")
    stub.delay = 0.1
    interrupt(pytester, args, signal.SIGKILL, after=4)
    settle(stub)
    assert sends(stub)["question 1"] == 1
    result = pytester.runpytest(*args, "--llmbench-resume")
    result.assert_outcomes(passed=5, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*resumed: *500*"])
    assert sends(stub)["question 1"] == 1


def test_changed_options_refuse_the_resume_listing_each_difference_and_force_overrides(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.1
    path = suite(pytester, 10)
    args = base_args(pytester, stub, path)
    interrupt(pytester, args, signal.SIGKILL, after=3)
    settle(stub)
    journal = next((pytester.path / RESULTS).glob(f"*/{JOURNAL}"))
    kept = journal.read_bytes()
    sent = len(stub.requests)
    path.write_text(path.read_text().replace("question 3", "question three"))  # an edited prompt

    refused = pytester.runpytest(*args, "--llmbench-stream", "--llmbench-timeout", "5", "--llmbench-resume")

    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*these options differ*", "*--llmbench-stream: recorded False, now True*",
                                  "*suite files*", "*--llmbench-timeout: recorded 600.0, now 5.0*",
                                  "*--llmbench-resume-force*"])
    assert len(stub.requests) == sent and journal.read_bytes() == kept  # nothing sent, nothing written

    forced = pytester.runpytest(*args, "--llmbench-stream", "--llmbench-resume", "--llmbench-resume-force")
    forced.assert_outcomes(passed=10)
    forced.stdout.fnmatch_lines(["*resumed under other options (--llmbench-resume-force): --llmbench-stream*"])
    [batch] = batches(pytester)
    assert any("stream" in line for line in batch["resumed_from"]["option_differences"])


def test_resuming_a_finished_run_says_so_sends_nothing_and_exits_0(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    args = base_args(pytester, stub, suite(pytester, 3))
    pytester.runpytest(*args).assert_outcomes(passed=3)
    sent = len(stub.requests)
    result = pytester.runpytest_subprocess(*args, "--llmbench-resume")
    assert result.ret == pytest.ExitCode.OK
    result.stderr.fnmatch_lines(["*finished (3 results recorded): nothing to resume*"])
    assert len(stub.requests) == sent and len(batches(pytester)) == 1


@pytest.mark.parametrize(("given", "message"), [
    ("nowhere", "*--llmbench-resume nowhere: no such run folder*"),
    ("latest", "*no earlier run in*to resume*"),
])
def test_a_resume_with_nothing_to_resume_is_a_usage_error(pytester: pytest.Pytester, stub: OpenAIStub, given: Any, message: Any) -> None:
    result = pytester.runpytest(*base_args(pytester, stub, suite(pytester, 2)), f"--llmbench-resume={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not stub.requests


def test_a_journal_from_a_newer_version_or_not_a_run_is_refused_and_left_as_it_was(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    folder = pytester.path / RESULTS / "20260101-000000"
    folder.mkdir(parents=True)
    args = base_args(pytester, stub, suite(pytester, 2))
    result = pytester.runpytest(*args, f"--llmbench-resume={folder}")
    result.stderr.fnmatch_lines([f"*{folder} has no {JOURNAL}: not a pytest-llmbench run folder*"])
    journal = folder / JOURNAL
    journal.write_text('{"kind":"session","schema":99,"started":"x","options":{}}\n')
    result = pytester.runpytest(*args, f"--llmbench-resume={folder}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*written by a newer pytest-llmbench (journal schema 99*"])
    assert journal.read_text() == '{"kind":"session","schema":99,"started":"x","options":{}}\n'
    assert not stub.requests


def test_a_torn_last_line_is_skipped_and_counted(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.05
    args = base_args(pytester, stub, suite(pytester, 8))
    interrupt(pytester, args, signal.SIGKILL, after=3)
    journal = next((pytester.path / RESULTS).glob(f"*/{JOURNAL}"))
    with journal.open("ab") as sink:
        sink.write(b'{"kind":"result","nodeid":"r.json::t07","ph')  # a write cut by the machine going down
    result = pytester.runpytest(*args, "--llmbench-resume")
    result.assert_outcomes(passed=8)
    [batch] = batches(pytester)
    assert batch["resumed_from"]["unreadable_lines"] == 1 and len(batch["tests"]) == 8
