"""Requests of hand-written tests through the ``llm_client`` fixture are recorded like suite requests: rows of the
batch attributed to the test's node id, statistics, per-test files and the ``pytest_llmbench_result`` hook, with
and without xdist; the run's test counts stay pytest's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

STUB = {"answers": {"France": "Paris is the capital."}}

WORKERS = pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])

HAND_TESTS = """
    def test_one(llm_client):
        assert llm_client.complete("Capital of France?", max_tokens=5).success

    def test_two(llm_client):
        first = llm_client.chat([{"role": "user", "content": "hi"}])
        second = llm_client.complete("Capital of France?")
        assert first.success and second.response_text == "Paris is the capital."

    def test_fails_after_its_request(llm_client):
        assert llm_client.complete("anything").response_text == "not what the stub says"

    def test_without_requests():
        pass
"""

# the hook runs where the test runs (a worker under -n): each call appends a line the test reads back
CONFTEST = """
    import json

    def pytest_llmbench_result(result, item):
        with open("hook_seen.jsonl", "a") as seen:
            seen.write(json.dumps([result.test_id, item.nodeid, result.category]) + "\\n")
        result.performance_metrics["hooked"] = True

    def pytest_llmbench_progress(progress):
        with open("progress.jsonl", "a") as log:
            log.write(json.dumps(progress.to_dict()) + "\\n")
"""


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_hand=HAND_TESTS)
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *args)


def batch_of(pytester: pytest.Pytester) -> dict[str, Any]:
    [path] = (pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def lines_of(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def client_rows(batch: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [row for row in batch["tests"] if row["test_id"] == f"test_hand.py::{name}"]


@WORKERS
def test_each_request_is_a_batch_row_of_the_calling_test(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    result = run(pytester, stub, "test_hand.py", *workers)
    result.assert_outcomes(passed=3, failed=1)
    batch = batch_of(pytester)
    [row] = client_rows(batch, "test_one")
    assert row["category"] == "llm_client" and row["success"] and row["passed"] and row["llm_client"]
    assert row["test_name"] == "test_hand.py::test_one" and row["completion_tokens"]
    [failing] = client_rows(batch, "test_fails_after_its_request")
    assert failing["success"] and failing["passed"] is False  # the request worked; the test's assert failed
    assert not client_rows(batch, "test_without_requests")


@WORKERS
def test_the_result_hook_sees_every_request_with_its_test(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    run(pytester, stub, "test_hand.py", *workers).assert_outcomes(passed=3, failed=1)
    seen = lines_of(pytester.path / "hook_seen.jsonl")
    assert sorted(seen) == sorted([["test_hand.py::test_one", "test_hand.py::test_one", "llm_client"]]
                                  + [["test_hand.py::test_two", "test_hand.py::test_two", "llm_client"]] * 2
                                  + [["test_hand.py::test_fails_after_its_request"] * 2 + ["llm_client"]])
    folder = pytester.path / "llmbench_results" / "latest"
    [row] = client_rows(batch_of(pytester), "test_one")
    written = json.loads((folder / row["completion_file"]).with_name(f"{row['file_stem']}_result.json").read_text())
    assert written["performance_metrics"]["hooked"] is True  # what the hook set reaches the files


@WORKERS
def test_two_requests_in_one_test_give_two_rows_with_their_own_files(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    run(pytester, stub, "test_hand.py", *workers).assert_outcomes(passed=3, failed=1)
    rows = client_rows(batch_of(pytester), "test_two")
    assert [row["passed"] for row in rows] == [True, True]
    stems = [row["file_stem"] for row in rows]
    assert stems[1] == f"{stems[0]}-2"
    folder = pytester.path / "llmbench_results" / "latest"
    texts = sorted((folder / row["completion_file"]).read_text() for row in rows)
    assert texts[0] != texts[1] and all((folder / "llm_client").is_dir() for _ in rows)
    assert any("Paris is the capital." in text for text in texts)


@WORKERS
def test_statistics_count_requests_and_the_counts_of_tests_stay_pytests(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    run(pytester, stub, "test_hand.py", *workers).assert_outcomes(passed=3, failed=1)
    aggregate = batch_of(pytester)["aggregate"]
    assert aggregate["total_requests"] == aggregate["successful_tests"] == 4  # requests, all answered
    assert (aggregate["total_tests"], aggregate["passed_tests"]) == (3, 2)  # tests that made requests
    assert batch_of(pytester)["categories"]["llm_client"]["total_tests"] == 4


@WORKERS
def test_a_suite_run_alongside_keeps_its_progress_and_counts(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b", "prompt": "Capital of France?"},
                                                   {"id": "c"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "test_hand.py", *workers)
    result.assert_outcomes(passed=6, failed=1)
    batch = batch_of(pytester)
    assert batch["partial"] is False
    assert (batch["aggregate"]["total_tests"], batch["aggregate"]["passed_tests"]) == (6, 5)
    assert batch["aggregate"]["total_requests"] == 7
    assert sorted(row["test_id"] for row in batch["tests"] if not row["llm_client"]) == ["a", "b", "c"]
    last = lines_of(pytester.path / "progress.jsonl")[-1]
    assert (last["completed_tests"], last["total_tests"]) == (3, 3)  # the llmbench items, not the requests
    result.stdout.fnmatch_lines(["*tests 6: 5 passed, 1 failed*"])


def test_test_files_failed_writes_only_the_failing_tests_requests(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run(pytester, stub, "test_hand.py", "--llmbench-test-files", "failed").assert_outcomes(passed=3, failed=1)
    batch = batch_of(pytester)
    [failing] = client_rows(batch, "test_fails_after_its_request")
    folder = pytester.path / "llmbench_results" / "latest" / "llm_client"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{failing['file_stem']}{suffix}" for suffix in ("_completion.txt", "_result.json"))
    assert len([row for row in batch["tests"] if row["llm_client"]]) == 4  # every request is still a row


def test_a_result_hook_that_raises_keeps_the_request_as_a_failed_check(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_result(result):
            raise RuntimeError("conftest bug")
    """)
    pytester.makepyfile(test_hand=HAND_TESTS)
    pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider",
                       "test_hand.py").assert_outcomes(passed=3, failed=1)
    [row] = client_rows(batch_of(pytester), "test_one")
    assert row["evaluation_passed"] is False
    assert row["failure"]["checks"] == ["pytest_llmbench_result: raised RuntimeError: conftest bug"]


def test_llm_client_requests_are_held_to_the_sessions_concurrency(pytester: pytest.Pytester, load_stub: OpenAIStub) -> None:
    """Eight threads of one hand-written test ask at once; --llmbench-concurrency 4 lets four be in flight. The
    server holds each wave until four are in (gather), so its peak is what the client let through."""
    load_stub.gather, load_stub.gather_timeout = 4, 2.0
    pytester.makepyfile(test_threads="""
        from concurrent.futures import ThreadPoolExecutor

        def test_eight_at_once(llm_client):
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda n: llm_client.complete(f"q{n}", max_tokens=2), range(8)))
            assert all(r.success for r in results)
    """)
    run = pytester.runpytest("--llmbench-endpoint", load_stub.url, "--llmbench-concurrency", "4",
                             "-p", "no:cacheprovider")
    run.assert_outcomes(passed=1)
    assert load_stub.peak == 4 and load_stub.answered == 8


def test_a_hand_written_test_outside_the_root_folder_is_named_by_its_file_not_an_empty_one(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    (pytester.path / "root").mkdir()
    (pytester.path / "root" / "pytest.ini").write_text("[pytest]\n")
    hand = pytester.path / "mine" / "test_hand.py"
    hand.parent.mkdir()
    hand.write_text("def test_client_chat(llm_client):\n    assert llm_client.complete('hi').success\n")
    pytester.chdir()

    result = pytester.runpytest("--rootdir", "root", str(hand), "--llmbench-endpoint", stub.url,
                                "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    [row] = batch_of(pytester)["tests"]
    assert row["test_id"] == f"{hand.resolve().as_posix()}::test_client_chat"
