"""Whole sessions when things go wrong: secrets, hostile text, signals, leftovers, hostile names, planted links.

Every test runs a real pytest session (in-process or in a subprocess) against a real HTTP stub on 127.0.0.1
and then reads what the session left behind: the terminal, every file, the processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from faultserver import FaultServer, Reply, refusing_url
from openai_stub import OpenAIStub, write_suite
from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import RequestMatcher
from run_files import batch_of
from werkzeug import Request, Response

OUTPUT = "llmbench_results/latest"
XDIST = ("-n", "2")


class _PromptMatcher(RequestMatcher):
    """Matches completion requests whose body mentions a word, so one test's request gets a special reply."""

    def __init__(self, word: str) -> None:
        super().__init__("/v1/completions", method="POST")
        self.word = word

    def match(self, request: Request) -> bool:
        return super().match(request) and self.word in request.get_data(as_text=True)


def reply_for(httpserver: Any, word: str, handler: Callable[[Request], Response]) -> None:
    """Answer requests mentioning ``word`` with ``handler``; checked before the stub's own handlers."""
    special = httpserver.expect(_PromptMatcher(word))
    httpserver.handlers.remove(special)  # expect() appended it; the first match wins
    httpserver.handlers.insert(0, special)
    special.respond_with_handler(handler)


def error_reply(status: int, message: str) -> Callable[[Request], Response]:
    return lambda request: Response(json.dumps({"error": {"message": message, "type": "proxy"}}), status=status,
                                    content_type="application/json")


def session(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """A pytest subprocess with its output kept as raw bytes: what a terminal or a CI log would receive."""
    return subprocess.run([sys.executable, "-m", "pytest", "--color=no", *args], cwd=cwd, check=False, capture_output=True,
                          timeout=120, env={**os.environ, **(env or {})})


def every_file(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file() and not path.is_symlink()}


def results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.rglob("*_result.json"))]




# -- secrets ------------------------------------------------------------------------------------------------

ENV_KEY = "sk-env-7f3a9c21e4d5"
CLI_KEY = "sk-cli-b81d04e6aa3c"
HEADER_SECRETS = {"X-Api-Key": "xak-5e0c2b9d77f1", "Cookie": "session=ck-91fa3e6d20b8",
                  "Proxy-Authorization": "Basic pa-4c7e1b8f03a2"}
SECRET_TOKENS = (ENV_KEY, CLI_KEY, "xak-5e0c2b9d77f1", "ck-91fa3e6d20b8", "pa-4c7e1b8f03a2")
HEADER_ARGS = tuple(arg for name, value in HEADER_SECRETS.items() for arg in ("--llmbench-header", f"{name}: {value}"))


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment's key (the command line's wins over it) and a token for the conftest's hook."""
    monkeypatch.setenv("LLMBENCH_API_KEY", ENV_KEY)
    monkeypatch.setenv("SESSION_TOKEN", HEADER_SECRETS["X-Api-Key"])


def secret_suite(pytester: pytest.Pytester, stub: OpenAIStub, httpserver: Any, key: str) -> Path:
    """Five tests: a 401, a 500 from a proxy that quotes every request header, a model repeating the key
    (once in a passing answer, once in a failing check), and a plain answer; a hook puts a token in every body."""
    pytester.makeconftest("""
        import os
        def pytest_llmbench_build_request(test_case, request):
            request["user"] = os.environ["SESSION_TOKEN"]
    """)
    stub.status["deny"] = 401
    stub.answers["repeat"] = f"Your key is {key}; cookie {HEADER_SECRETS['Cookie']}; {HEADER_SECRETS['X-Api-Key']}"

    def echo_headers(request: Request) -> Response:
        return error_reply(500, f"upstream refused: {json.dumps(dict(request.headers))}")(request)

    reply_for(httpserver, "echo", echo_headers)
    return write_suite(pytester.path / "secrets.json", [  # the refusal last: the first one stops the session
        {"id": "echoed", "prompt": "echo my headers"},
        {"id": "repeated", "prompt": "repeat the key"},
        {"id": "repeated_check", "prompt": "repeat the key again", "expected": {"contains": "absent-word"}},
        {"id": "plain", "prompt": "hello"},
        {"id": "denied", "prompt": "deny me"},
    ])


def assert_no_secret_anywhere(pytester: pytest.Pytester, result: pytest.RunResult) -> None:
    written = every_file(pytester.path)
    assert any("llmbench_results" in str(path) for path in written) and any(".pytest_cache" in str(p) for p in written)
    printed = "\n".join(result.outlines + result.errlines)
    for token in SECRET_TOKENS:
        assert token not in printed
        leaks = [path for path, data in written.items() if token.encode() in data]
        assert leaks == [], f"{token} written to {leaks}"


def assert_secrets_were_used_and_masked(pytester: pytest.Pytester, stub: OpenAIStub, output: Path,
                                        key: str) -> None:
    sent = stub.requests[0]["headers"]
    assert sent["Authorization"] == f"Bearer {key}" and sent["Cookie"] == HEADER_SECRETS["Cookie"]
    by_id = {r["test_id"]: r for r in results(output)}
    assert by_id["repeated"]["success"] is True
    assert by_id["repeated"]["response_text"] == "Your key is ***; cookie ***; ***"
    assert by_id["denied"]["error"]["status"] == 401 and by_id["echoed"]["error"]["status"] == 500
    assert "***" in by_id["echoed"]["error_message"]
    assert by_id["plain"]["response_text"] == "stub answer" and by_id["plain"]["request"]["user"] == "***"


def test_no_secret_is_written_or_printed_in_a_verbose_run_with_junitxml(pytester: pytest.Pytester, stub: OpenAIStub, httpserver: HTTPServer, secret_env: Any) -> None:
    suite = secret_suite(pytester, stub, httpserver, ENV_KEY)
    result = pytester.runpytest_subprocess(
        "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, *HEADER_ARGS, "-v",
        "--junitxml", "junit.xml", "--llmbench-retries", "1", "--llmbench-retry-delay", "0.01")
    result.assert_outcomes(passed=2, failed=3)
    assert (pytester.path / "junit.xml").exists()
    assert_secrets_were_used_and_masked(pytester, stub, pytester.path / OUTPUT, ENV_KEY)
    assert_no_secret_anywhere(pytester, result)


def test_no_secret_is_written_or_printed_by_a_streamed_xdist_run(pytester: pytest.Pytester, stub: OpenAIStub, httpserver: HTTPServer, secret_env: Any) -> None:
    suite = secret_suite(pytester, stub, httpserver, CLI_KEY)
    result = pytester.runpytest_subprocess(
        "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--llmbench-api-key", CLI_KEY,
        *HEADER_ARGS, *XDIST, "-v", "--llmbench-stream", "--junitxml", "junit.xml",
        "--llmbench-retries", "1", "--llmbench-retry-delay", "0.01")
    result.assert_outcomes(passed=2, failed=3)
    assert_secrets_were_used_and_masked(pytester, stub, pytester.path / OUTPUT, CLI_KEY)
    assert all(r["stream"] for r in results(pytester.path / OUTPUT) if r["success"])
    assert_no_secret_anywhere(pytester, result)


# -- unreachable endpoint -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "message"), [
    ("127.0.0.1:{port}", "connection refused by 127.0.0.1:{port}"),
    ("127.0.0.1:99999", "is not a valid URL: Port out of range"),
    ("[::1", "is not a valid URL: Invalid IPv6 URL"),
], ids=["refused", "bad-port", "bad-ipv6"])
def test_unusable_endpoint_stops_the_session_once_without_traceback_or_secret(pytester: pytest.Pytester, host: Any, message: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(5)])
    with refusing_url() as url:
        port = url.rsplit(":", 1)[1]
        proc = session(pytester.path, "--llmbench-suite", str(suite), "--llmbench-endpoint",
                       f"http://user:{CLI_KEY}@{host.format(port=port)}/v1", "--llmbench-api-key", CLI_KEY,
                       *HEADER_ARGS, "--llmbench-retries", "5", env={"LLMBENCH_API_KEY": ENV_KEY})
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert out.count(message.format(port=port)) == 1 and "http://***@" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out and "passed" not in out and "failed" not in out
    assert [token for token in SECRET_TOKENS if token in out] == []
    assert not (pytester.path / OUTPUT).exists() or not any((pytester.path / OUTPUT).iterdir())


def test_endpoint_that_hangs_up_is_probed_once_even_with_retries_and_workers(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(6)])
    with FaultServer() as server:
        server.always(Reply(hang_up=True))
        proc = session(pytester.path, "--llmbench-suite", str(suite), "--llmbench-endpoint",
                       server.url_for("/v1"), "--llmbench-api-key", CLI_KEY, "--llmbench-retries", "5", *XDIST)
        received = list(server.received)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert len(received) == 1 and received[0].path == "/v1/models"
    assert "closed the connection" in out and "Traceback" not in out and CLI_KEY not in out


# -- terminal safety ----------------------------------------------------------------------------------------

HOSTILE = "A\x1b[31mRED\x1b]0;title\x07 C1\x9b[2J bidi\u202eevil nul\x00 bell\x07 end"
RAW_CONTROLS = ("\x1b", "\x9b", "\u202e", "\x00", "\x07")
ESCAPED = ("\\x1b[31mRED", "\\x1b]0;title\\x07", "\\x9b[2J", "\\u202eevil", "\\x00", "\\x07")


@pytest.mark.parametrize("verbosity", [(), ("-v",)], ids=["plain", "verbose"])
def test_hostile_text_reaches_the_terminal_escaped_and_the_files_raw(pytester: pytest.Pytester, stub: OpenAIStub, httpserver: HTTPServer, verbosity: Any) -> None:
    stub.answers["hostile"] = HOSTILE
    reply_for(httpserver, "refuse", error_reply(400, f"bad request {HOSTILE}"))
    suite = write_suite(pytester.path / "s.json", [
        {"id": "check", "name": f"name {HOSTILE}", "prompt": "hostile answer", "expected": {"contains": "absent-word"}},
        {"id": f"id {HOSTILE}", "name": f"name {HOSTILE}", "category": f"cat {HOSTILE}", "prompt": "hostile"},
        {"id": "refused", "prompt": "refuse this"},
        {"id": "fine", "category": "plain"},
    ])
    proc = session(pytester.path, "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                   "-p", "no:cacheprovider", "--llmbench-retries", "0", *verbosity)
    out = proc.stdout.decode("utf-8") + proc.stderr.decode("utf-8")
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED
    for char in RAW_CONTROLS:
        assert char not in out, f"raw {char!r} on the terminal"
    for shown in ESCAPED:
        assert shown in out
    for where in ("slowest: ", "cat A\\x1b[31mRED", "name A\\x1b[31mRED", "not found in answer", "HTTP 400"):
        assert where in out
    if verbosity:
        assert "s.json::id A\\x1b[31mRED" in out  # pytest's own line per test names it
    saved = {r["test_id"]: r for r in results(pytester.path / OUTPUT)}
    assert saved["check"]["response_text"] == HOSTILE and saved[f"id {HOSTILE}"]["category"] == f"cat {HOSTILE}"
    assert HOSTILE in saved["refused"]["error_message"]


# -- interrupts ---------------------------------------------------------------------------------------------


def _wait_for_results(proc: subprocess.Popen[bytes], folder: Path, count: int) -> set[psutil.Process]:
    """Children seen while tests run (from the first result file on), once ``count`` result files exist.

    Not before: at start-up pytest-metadata runs ``uname -p`` for a moment, which is not the run's to end."""
    parent = psutil.Process(proc.pid)
    seen: set[psutil.Process] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        written = len(list(folder.glob("*_result.json")))
        try:
            if written:
                seen.update(parent.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        if written >= count:
            return seen
        time.sleep(0.02)
    pytest.fail(f"the run ended or stalled before {count} results: {proc.poll()}")


def _alive(processes: set[psutil.Process]) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(list(processes), timeout=10)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize(("signum", "workers", "whole_group"), [
    (signal.SIGINT, (), False), (signal.SIGTERM, (), False), (signal.SIGINT, XDIST, False),
    (signal.SIGTERM, XDIST, False), (signal.SIGINT, XDIST, True),  # Ctrl-C reaches the workers as well
], ids=["SIGINT", "SIGTERM", "SIGINT-xdist", "SIGTERM-xdist", "ctrl-c-xdist"])
def test_signal_ends_the_run_with_a_partial_batch_every_finished_result_and_no_orphans(
        pytester: pytest.Pytester, stub: OpenAIStub, signum: Any, workers: Any, whole_group: Any) -> None:
    stub.delay = 0.3
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i:02d}"} for i in range(30)])
    folder = pytester.path / OUTPUT
    log = pytester.path / "session.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "--llmbench-suite", str(suite),
                                 "--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *workers],
                                cwd=pytester.path, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            children = _wait_for_results(proc, folder, 3)
            if whole_group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)
            returncode = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert returncode == pytest.ExitCode.INTERRUPTED, log.read_text()
    assert (len(children) >= 2 if workers else not children) and _alive(children) == []  # xdist may respawn one
    batch = batch_of(folder)
    assert batch["partial"] is True
    assert ("SIGTERM" if signum == signal.SIGTERM else "interrupt") in batch["partial_reason"]
    on_disk = {r["test_id"] for r in results(folder)}
    assert 3 <= len(on_disk) < 30 and len(list(folder.glob("*_completion.txt"))) == len(on_disk)
    assert {row["test_id"] for row in batch["tests"]} == on_disk
    assert batch["aggregate"]["total_tests"] == len(on_disk)
    assert not list(folder.glob("*.llmbench-tmp"))


# -- files on disk ------------------------------------------------------------------------------------------


def test_leftover_temp_files_are_removed_and_real_files_are_whole(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    killed = pytester.path / "llmbench_results" / "20200101-000000"  # a run killed half-way through a write
    (killed / "m1").mkdir(parents=True)
    planted = [killed.parent / ".0123abcd.llmbench-tmp", killed / "m1" / ".4567ef01.llmbench-tmp"]
    folder = pytester.path / OUTPUT
    for path in planted:
        path.write_text('{"test_id": "half of a')
        os.utime(path, (time.time() - 7200, time.time() - 7200))  # left by a run killed two hours ago
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                       "-p", "no:cacheprovider").assert_outcomes(passed=2)
    assert not any(path.exists() for path in planted)
    assert not list(folder.parent.rglob("*.llmbench-tmp"))
    for path in folder.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    assert sorted(r["test_id"] for r in results(folder)) == ["a", "b"]


HOSTILE_NAMES = ("../escape", "../../up/and/out", "/abs/path", "a/b", "back\\slash", "ctl\x01\x1f\x7f", "new\nline",
                 "x::y", "CON", "nul.txt", "aux.json", "trailing...", "trailing space ", "é" * 300, "Case", "case",
                 "CASE", "..", ".", "-k")


@pytest.mark.parametrize("workers", [(), XDIST], ids=["serial", "xdist"])
def test_hostile_test_ids_and_names_stay_inside_the_output_folder(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": name, "name": name} for name in HOSTILE_NAMES])
    folder = pytester.path / "deep" / "er" / "out"  # room for ../../ to land inside pytester.path if followed
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                           "-p", "no:cacheprovider", "--llmbench-output", str(folder), *workers)
    result.assert_outcomes(passed=len(HOSTILE_NAMES))
    written = [path for path in pytester.path.rglob("*") if path.name.endswith(("_result.json", "_completion.txt"))]
    assert [path for path in written if path.parent.parent != folder] == []
    assert len(written) == 2 * len(HOSTILE_NAMES)
    folder = folder / "latest"
    stems = {row["test_id"]: row["file_stem"] for row in batch_of(folder)["tests"]}
    assert len({stem.casefold() for stem in stems.values()}) == len(HOSTILE_NAMES)  # distinct on NTFS and APFS too
    for saved in results(folder):
        assert (folder / f"{stems[saved['test_id']]}_result.json").is_file()
    assert sorted(r["test_id"] for r in results(folder)) == sorted(HOSTILE_NAMES)


def test_symlinks_planted_in_the_output_folder_are_not_followed(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    outside = pytester.path / "outside"
    (outside / "folder").mkdir(parents=True)
    output = pytester.path / "llmbench_results"
    output.mkdir()
    (output / "latest").symlink_to(outside / "folder", target_is_directory=True)  # the pointer, aimed elsewhere
    victims = {}
    for name in ("Test_0_result.json", "Test_0_completion.txt", "Test_1_result.json"):
        victims[name] = outside / f"{name}.victim"
        victims[name].write_text("precious")
        (outside / "folder" / name).symlink_to(victims[name])
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                "--llmbench-model", "m1", "--llmbench-model", "m2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert all(victim.read_text() == "precious" for victim in victims.values())
    assert sorted(p.name for p in (outside / "folder").iterdir()) == sorted(victims)  # nothing added
    folder = output / "latest"  # the pointer was replaced, never written through
    assert folder.resolve().parent == output.resolve()
    assert json.loads((folder / "m1" / "Test_0_result.json").read_text())["test_id"] == "a"


def test_credentials_in_the_endpoint_url_are_not_written(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    endpoint = stub.url.replace("http://", f"http://user:{CLI_KEY}@")
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", endpoint)
    result.assert_outcomes(passed=2)
    assert stub.requests[0]["headers"]["Authorization"].startswith("Basic ")  # the URL's credentials were used
    assert_no_secret_anywhere(pytester, result)
    assert batch_of(pytester.path / OUTPUT)["run"]["endpoint"].startswith("http://***@")
