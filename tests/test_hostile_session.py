"""Hostile answers and suites, round two, in real pytest sessions: warnings that cannot cost the batch, checks
that cannot hang or crash, files that are never lost quietly, node ids that never collide."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faultserver import COMPLETION, FaultServer, Reply
from openai_stub import write_suite
from run_files import batch_of, results_by_id

from pytest_llmbench.session.storage import HOST_TAG, TEMP_SUFFIX

OUTPUT = "llmbench_results"
MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}
REPO = Path(__file__).parent.parent


def answering(text: str, tokens: int = 1) -> Reply:
    choice = {"index": 0, "text": text, "finish_reason": "stop"}
    return Reply.json({**COMPLETION, "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": tokens}})


def run(pytester: pytest.Pytester, server: FaultServer, suite: Path, *args: str) -> pytest.RunResult:
    server.always(Reply.json(MODELS), path="/v1/models")
    return pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", server.url_for("/v1"),
                                         "--llmbench-model", "m", "--llmbench-retries", "0", "-p", "no:cacheprovider",
                                         *args, timeout=120)






# -- 3. warnings never cost the batch -----------------------------------------------------------------------


def test_under_w_error_a_run_that_warned_keeps_its_batch_and_summary_and_fails_with_the_reason(pytester: pytest.Pytester,
                                                                                                fault_server: FaultServer) -> None:
    fault_server.always(Reply(500, {"error": {"message": "down"}}), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(20)])  # the alert's window

    result = run(pytester, fault_server, suite, "-W", "error", "--llmbench-alert-error-rate", "0.1")

    assert result.ret == pytest.ExitCode.TESTS_FAILED and "INTERNALERROR" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*llmbench summary*", "FAILED llmbench warning raised as an error (-W): *error rate*"])
    assert len(batch_of(pytester.path / OUTPUT)["tests"]) == 20


def test_a_configuration_warning_under_w_error_is_a_clean_usage_error(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "t"}])

    result = run(pytester, fault_server, suite, "-W", "error", "--llmbench-insecure")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "--llmbench-insecure is set" in output


# -- 4. bounded checks --------------------------------------------------------------------------------------


def test_hostile_answers_and_broken_hooks_fail_their_checks_and_every_file_is_written(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_build_request(test_case, request):
            if test_case.id == "request_hook":
                raise RuntimeError("build_request broke")

        def pytest_llmbench_result(result):
            if result.test_id == "result_hook":
                raise KeyError("result hook broke")
    """)
    fault_server.reply(answering("a" * 41 + "!"), answering("[" * 100_000), answering("fine"),
                       path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [
        {"id": "backtracking", "expected": {"regex": "^(a|a)+$"}},
        {"id": "nested", "expected": {"is_json": True}},
        {"id": "result_hook"},
        {"id": "request_hook"},
    ])

    started = time.monotonic()
    result = run(pytester, fault_server, suite, "--llmbench-timeout", "2")

    assert time.monotonic() - started < 60  # unbounded, the pattern runs for hours
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*regex timed out after 1 s*", "*JSON nested deeper than 100 levels*"])
    files = results_by_id(pytester.path / OUTPUT)
    assert sorted(files) == ["backtracking", "nested", "request_hook", "result_hook"]
    assert "build_request broke" in files["request_hook"]["error_message"]
    [hook_check] = files["result_hook"]["evaluation_result"]["checks"]
    assert hook_check["name"] == "pytest_llmbench_result" and "result hook broke" in hook_check["detail"]
    batch = batch_of(pytester.path / OUTPUT)
    assert batch["lost_tests"] == [] and len(batch["tests"]) == 4


# -- 5. loud file loss, ids that never collide, shared output folders ---------------------------------------


def test_a_batch_file_that_cannot_be_written_is_a_warning_a_summary_line_and_a_failed_exit(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    pytester.makeconftest("""
        import resource, signal
        def pytest_llmbench_batch(batch):  # the disk fills up just as the batch file is written
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    """)
    fault_server.always(answering("ok"), path="/v1/completions")
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])

    # Pipes, not pytester's files: the size limit would cut those too.
    proc = subprocess.run([sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint",
                           fault_server.url_for("/v1"), "--llmbench-model", "m", "-p", "no:cacheprovider"],
                          cwd=pytester.path, capture_output=True, text=True, timeout=120, check=False)

    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout
    assert "LLMBenchWarning: batch file NOT WRITTEN: File too large" in proc.stdout
    assert "\nbatch file NOT WRITTEN: File too large [EFBIG]\n" in proc.stdout
    assert not list((pytester.path / OUTPUT).rglob("batch_results_*")) and len(results_by_id(pytester.path / OUTPUT)) == 2


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["sequential", "xdist"])
def test_ids_equal_after_terminal_escaping_stay_distinct_nodes_with_their_own_files(pytester: pytest.Pytester, fault_server: FaultServer, workers: Any) -> None:
    fault_server.always(answering("ok"), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": "dup\x1b", "name": "one"}, {"id": "dup\\x1b", "name": "two"}])

    result = run(pytester, fault_server, suite, "-rA", *workers)

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["PASSED s.json::dup\\x1b"])  # as pytest prints them: escaped, still two
    result.stdout.fnmatch_lines(["PASSED s.json::dup\\\\x1b"])
    assert sorted(results_by_id(pytester.path / OUTPUT)) == ["dup\x1b", "dup\\x1b"]


def test_two_tests_that_would_share_a_node_id_stop_collection_naming_both(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "x"}, {"id": "x[m]"}])

    result = run(pytester, fault_server, suite, "--llmbench-model", "m][m", "--collect-only")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*tests 'x' and 'x[[]m]' would share the node id *s.json::x[[]m][[]m]*"])


def test_a_second_session_on_the_same_folder_cleans_only_stale_temp_files(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    folder = pytester.path / OUTPUT
    folder.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        dead_pid = _exited_pid()
        names = {"live": f".{HOST_TAG}-{alive.pid:x}-abcd-0{TEMP_SUFFIX}",
                 "dead": f".{HOST_TAG}-{dead_pid:x}-abcd-0{TEMP_SUFFIX}",
                 "other_host_fresh": f".0badc0de-1-abcd-0{TEMP_SUFFIX}",
                 "other_host_old": f".0badc0de-2-abcd-0{TEMP_SUFFIX}"}
        for name in names.values():
            (folder / name).write_text("in flight")
        os.utime(folder / names["other_host_old"], (time.time() - 7200, time.time() - 7200))
        fault_server.always(answering("ok"), path="/v1/completions")
        run(pytester, fault_server, write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}]))
        alive.kill()

    left = {kind for kind, name in names.items() if (folder / name).exists()}
    assert left == {"live", "other_host_fresh"}


def _exited_pid() -> int:
    """The pid of a process that has exited (and been reaped), so that no process has it now."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- 6. node ids for suites anywhere ------------------------------------------------------------------------


def test_suites_outside_the_root_folder_keep_their_path_in_node_ids_on_every_worker(pytester: pytest.Pytester, fault_server: FaultServer,
                                                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    pytester.makeini("[pytest]\n")  # the root folder is the working folder
    elsewhere = [tmp_path_factory.mktemp("elsewhere") for _ in range(2)]
    suites = [write_suite(folder / "s.json", [{"id": f"chat_{i:02d}"} for i in range(4)]) for folder in elsewhere]
    fault_server.always(answering("ok"), path="/v1/completions")

    result = run(pytester, fault_server, suites[0], "--llmbench-suite", str(suites[1]), "-n", "4", "-v",
                 "--rootdir", str(pytester.path))

    result.assert_outcomes(passed=8)
    for suite in suites:
        result.stdout.fnmatch_lines([f"*PASSED {suite.resolve().as_posix()}::chat_00*"])
    assert "Different tests were collected" not in result.stdout.str()
    assert len(batch_of(pytester.path / OUTPUT)["tests"]) == 8


# -- 8. the smaller ones ------------------------------------------------------------------------------------


def test_bidi_controls_and_invisible_characters_never_reach_file_names(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(answering("ok"), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "name": "invoice\u202etxt.exe"},
                                                   {"id": "b", "name": "zero\u200bwidth\u2066x"}])

    run(pytester, fault_server, suite).assert_outcomes(passed=2)

    names = [path.name for path in (pytester.path / OUTPUT).rglob("*")]
    assert not any(char in name for name in names for char in "\u202e\u200b\u2066")
    assert any(name.startswith("invoice_txt.exe") for name in names)


def test_summary_columns_fit_their_content_and_long_categories_stay_apart(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    # 10^9 tokens are implausible: the estimate (of twelve words) stands in, enough for a tokens/s figure
    fault_server.always(answering(" ".join(["ok"] * 12), tokens=10**9), path="/v1/completions")
    common = "a-category-name-longer-than-thirty-two-characters-"
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "category": common + "one"},
                                                   {"id": "b", "category": common + "two"}])

    result = run(pytester, fault_server, suite)

    lines = result.stdout.lines
    assert any(line.startswith(common + "one ") for line in lines) and any(line.startswith(common + "two ") for line
                                                                            in lines)
    [speed] = [line for line in lines if line.startswith("tokens/s ")]
    assert len(speed.split()) == 11  # the label and ten figures, none run together


def test_under_ci_without_the_local_extra_not_real_llm_deselects_instead_of_erroring() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m",
                           "not real_llm", "tests/test_real_llm.py", "tests/test_local_server.py"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "CI": "1"}, check=False)

    assert proc.returncode == pytest.ExitCode.OK, proc.stdout + proc.stderr
    assert "errors" not in proc.stdout and "deselected" in proc.stdout


# -- round three: Ctrl-C in a load run ----------------------------------------------------------------------


def test_ctrl_c_twice_in_a_load_run_ends_cleanly_interrupted_and_the_last_line_counts_what_was_recorded(
        pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(Reply.json(MODELS), path="/v1/models")
    fault_server.always(Reply.json(COMPLETION, delay=0.3), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(200)])
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint",
               fault_server.url_for("/v1"), "--llmbench-model", "m", "-p", "no:cacheprovider",
               "--llmbench-concurrency", "8", "--llmbench-server-metrics", "off"]
    proc = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(fault_server.received) < 30 and time.monotonic() < deadline:  # by the server's own count
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # while the run writes its files: before, exit 130 and a traceback
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert "Traceback" not in out
    rows = batch_of(pytester.path / OUTPUT)["tests"]
    assert batch_of(pytester.path / OUTPUT)["partial_reason"] == "interrupted (KeyboardInterrupt)"
    last = out.strip().splitlines()[-1]
    found = re.search(r"(\d+) passed", last)
    passed = int(found.group(1)) if found is not None else 0
    recorded = re.search(r"(\d+) recorded after the interrupt", last)
    assert passed + (int(recorded.group(1)) if recorded else 0) == len(rows) > 0, last
