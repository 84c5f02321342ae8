"""End to end: the plugin starts the embedded llama.cpp server itself and runs the quick-start suite on it."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_llmbench.session.embedded import (
    LAUNCHER,
    LOG_NAME,
    MODEL_ALIAS,
    cache_dir,
)
from pytest_llmbench.session.endpoint import WORKER_LOGS
from pytest_llmbench.session.server_scrape import EMBEDDED_LINE

pytestmark = [pytest.mark.real_llm, pytest.mark.timeout(900),  # a first run builds the model cache
              pytest.mark.usefixtures("local_extra")]

QUICKSTART = Path(__file__).parent.parent / "example_suites" / "quickstart.json"
QUICKSTART_TESTS = json.loads(QUICKSTART.read_text(encoding="utf-8"))["tests"]
USER_CACHE = cache_dir()  # read now: pytester points HOME at each test's folder, which would mean 253 MB each


@pytest.fixture(autouse=True)
def shared_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_CACHE_DIR", str(USER_CACHE))


def run_quickstart(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    """Run the suite with no endpoint option, so the plugin must start the embedded server."""
    suite = pytester.path / "quickstart.json"
    shutil.copy(QUICKSTART, suite)
    run = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args,
                                        timeout=300)
    run.assert_outcomes(passed=len(QUICKSTART_TESTS))
    assert run.ret == 0
    return run, pytester.path / "llmbench_results" / "latest"


def results(output: Path) -> list[dict[str, Any]]:
    found = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(output.glob("*_result.json"))]
    assert len(found) == len(QUICKSTART_TESTS)
    return found


def assert_server_ended(output: Path) -> str:
    """The one server the session started has exited; returns its log."""
    log = (output / LOG_NAME).read_text(encoding="utf-8", errors="replace")
    pids = [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log)]
    assert len(pids) == 1, log[-2000:]
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE  # exited, left to a non-reaping init
    return log


def test_quickstart_passes_on_the_embedded_server(pytester: pytest.Pytester) -> None:
    run, output = run_quickstart(pytester)
    # no endpoint given anywhere: the header says plainly that the embedded model is what is tested
    run.stdout.fnmatch_lines(["llmbench: EMBEDDED model server http://127.0.0.1:*/v1 (no --llmbench-endpoint, "
                              "LLMBENCH_ENDPOINT or OPENAI_BASE_URL set) | model gemma3-270m*",
                              EMBEDDED_LINE])  # llama-cpp-python has no /metrics: said once, no 404 looked for
    assert "HTTP 404" not in run.stdout.str()
    found = results(output)
    assert {r["api_type"] for r in found} == {"chat", "completions"}
    for result in found:
        assert result["success"] and result["model"] == MODEL_ALIAS
        assert not result["stream"] and not result["tokens_estimated"]  # counts from the server's usage
        assert result["prompt_tokens"] > 0 and result["completion_tokens"] > 0
        assert result["evaluation_result"]["passed"]
    assert len(list(output.glob("batch_results_*.json"))) == 1
    assert_server_ended(output)


def test_streaming_run_measures_ttft_and_estimates_tokens(pytester: pytest.Pytester) -> None:
    run, output = run_quickstart(pytester, "--llmbench-stream")
    found = results(output)
    assert found  # the loop below checks every result: there must be some
    for result in found:
        assert result["stream"] and result["success"]
        assert result["ttft"] > 0 and result["completion_tokens"] > 0
        # llama-cpp-python 0.3 sends no usage chunk in a stream, so the counts are estimates.
        assert result["tokens_estimated"]
    run.stdout.fnmatch_lines(["TTFT *"])
    assert_server_ended(output)


def test_concurrent_streams_all_finish_whole(pytester: pytest.Pytester) -> None:
    """llama-cpp-python ends a running stream with [DONE] and no finish_reason when the next request comes, unless
    started with ``--interrupt_requests False``: four streams at once then pass only if none was cut short."""
    _run, output = run_quickstart(pytester, "--llmbench-stream", "--llmbench-concurrency", "4")
    found = results(output)
    assert all(r["success"] and r["finish_reason"] in ("stop", "length") for r in found), [
        (r["test_id"], r["finish_reason"], r["error_message"]) for r in found]
    assert "--interrupt_requests False" in (output / LOG_NAME).read_text(encoding="utf-8", errors="replace")


def test_two_workers_share_one_server(pytester: pytest.Pytester) -> None:
    run, output = run_quickstart(pytester, "-n", "2")
    # the server starts before any worker has collected: the line still names the suite it was given
    run.stdout.fnmatch_lines([f"llmbench: EMBEDDED model server * | suites {pytester.path / 'quickstart.json'} | *"])
    assert all(r["success"] for r in results(output))
    log = assert_server_ended(output)
    assert len(re.findall(r'"POST /v1/(?:chat/)?completions HTTP/1\.1" 200', log)) == len(QUICKSTART_TESTS)


def test_the_real_model_can_be_the_judge(pytester: pytest.Pytester) -> None:
    """A rubric graded by the embedded model: the judge is really asked and its score is read and kept in the
    result; a judge answer the plugin cannot read fails this test."""
    suite = pytester.path / "judged.json"
    suite.write_text(json.dumps({"test_suite_id": "judged", "tests": [{
        "id": "judged_capital", "name": "Judged capital", "category": "knowledge",
        "prompt": "The capital of France is", "parameters": {"max_tokens": 8, "temperature": 0},
        "expected": {"rubric": "The answer names Paris.", "rubric_min_score": 0}}]}))
    run = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "-p", "no:cacheprovider", timeout=300)
    result = json.loads((pytester.path / "llmbench_results" / "latest" / "Judged_capital_result.json").read_text())
    judge = result["evaluation_result"]["judge"]
    assert judge["model"] == MODEL_ALIAS and judge["attempts"] == 1 and judge["seconds"] > 0
    check = result["evaluation_result"]["checks"][-1]
    assert check["name"] == "rubric"
    # The judge's score must be read: a judge that cannot be understood fails this test (min score 0: any passes).
    assert judge["score"] is not None, judge.get("error")
    assert 0 <= judge["score"] <= 10 and check["passed"] and run.ret == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_session_leaves_no_server_behind(pytester: pytest.Pytester, signum: int) -> None:
    """The plugin's own session, stopped mid-run: partial batch, status 2, and the server gone."""
    suite = pytester.path / "quickstart.json"
    shutil.copy(QUICKSTART, suite)
    pytester.makeconftest("""
        import time
        def pytest_llmbench_build_request(test_case, request):
            if test_case.index >= 2:
                time.sleep(60)  # hold the session mid-run until the signal comes
    """)
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "-p", "no:cacheprovider"]
    proc = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = pytester.path / "llmbench_results" / "latest"
    deadline = time.monotonic() + 120
    while len(list(output.glob("*_result.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children(recursive=True)
    servers = [p for p in children if LAUNCHER in " ".join(p.cmdline())]
    assert len(servers) == 1
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-2000:]
    _gone, alive = psutil.wait_procs(servers, timeout=15)
    assert not alive
    batch = json.loads(next(output.glob("batch_results_*.json")).read_text())
    assert batch["partial"] is True and len(batch["tests"]) == 2


HAND_WRITTEN = """
def test_asks_once(llm_client):
    result = llm_client.complete("One, two, three,", max_tokens=4, temperature=0)
    assert result.success, result.error_message

def test_asks_twice(llm_client):
    for prompt in ("Monday, Tuesday,", "A, B, C,"):
        assert llm_client.complete(prompt, max_tokens=4, temperature=0).success
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "two workers"])
def test_hand_written_tests_alone_say_what_they_test_and_keep_the_servers_log(pytester: pytest.Pytester,
                                                                             workers: tuple[str, ...]) -> None:
    """No suite and no endpoint: each process that runs llm_client tests starts the embedded server. The run
    still says what it tests, its batch names the endpoint, and every server's log ends in the run's folder."""
    pytester.makepyfile(test_hand=HAND_WRITTEN)
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers, timeout=300)
    run.assert_outcomes(passed=2)
    run.stdout.fnmatch_lines(["llmbench: EMBEDDED model server http://127.0.0.1:*/v1 *"])
    output = pytester.path / "llmbench_results"
    batch = json.loads(next((output / "latest").glob("batch_results_*.json")).read_text())
    assert batch["run"]["endpoint"].startswith("http://127.0.0.1:") and len(batch["tests"]) == 3
    logs = sorted(p.relative_to(output / "latest") for p in (output / "latest").rglob(LOG_NAME))
    assert logs and all(log.parts[0] in ("gw0", "gw1", LOG_NAME) for log in logs), logs
    assert not (output / WORKER_LOGS).exists() and not (output / LOG_NAME).exists()


def test_answer_drift_between_two_temperatures_of_the_embedded_model(pytester: pytest.Pytester) -> None:
    """Three runs of one small suite: at temperature 0 twice (the same answers), then at 1.5 with another seed."""
    prompts = ["Name three colours.", "Count from one to five.", "What is the capital of Italy?"]

    def run(name: str, temperature: float, seed: int, *args: str) -> dict[str, Any]:
        tests = [{"id": f"d{n}", "name": f"drift {n}", "category": "drift", "prompt": prompt,
                  "parameters": {"max_tokens": 24, "temperature": temperature, "seed": seed}}
                 for n, prompt in enumerate(prompts)]
        suite = pytester.path / f"{name}.json"
        suite.write_text(json.dumps({"test_suite_id": "drift", "tests": tests}), encoding="utf-8")
        result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args,
                                               timeout=300)
        result.assert_outcomes(passed=len(prompts))
        [batch] = (pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")
        loaded: dict[str, Any] = json.loads(batch.read_text(encoding="utf-8"))
        return loaded

    first = run("cold", 0.0, 1)
    baseline = Path(first["run"]["run_dir"])
    again = run("cold_again", 0.0, 1, "--llmbench-compare", str(baseline))
    assert again["drift"]["compared"] == 3 and again["drift"]["min_similarity"] >= 0.9, again["answer_changes"]
    assert again["drift"]["sampling_warnings"] == []
    hot = run("hot", 1.5, 7, "--llmbench-compare", str(baseline))
    assert hot["drift"]["compared"] == 3 and hot["drift"]["identical"] < 3, hot["tests"]
    assert hot["answer_changes"] and all(0 <= c["similarity"] < 1 or c["level"] == "normalized-equal"
                                         for c in hot["answer_changes"])
    assert hot["drift"]["sampling_warnings"] == [
        "3 tests sampled differently: seed=1, temperature=0.0 in the baseline, seed=7, temperature=1.5 now"]
    assert all(isinstance(c["diff"], list) and c["diff"] for c in hot["answer_changes"])
