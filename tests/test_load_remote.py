"""Beyond one machine: an xdist worker on another "host" through execnet's socket gateway, here on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite


@pytest.fixture
def socket_gateway(tmp_path: Path) -> Iterator[str]:
    """execnet's socketserver script: it runs whatever a client sends, so it listens on loopback only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "remote-home"
    home.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"],
                              cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()  # its accept loop takes the next one
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the execnet socket server did not start")
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.kill()
    server.wait()


def test_a_socket_gateway_worker_runs_its_share_and_the_batch_names_its_host(pytester: pytest.Pytester, load_stub: OpenAIStub,
                                                                              socket_gateway: Any) -> None:
    stub = load_stub
    stub.delay = 0.1
    project = pytester.path
    suite = write_suite(project / "remote.json", [{"prompt": f"question {n}"} for n in range(12)])
    result = pytester.runpytest_subprocess(
        "--llmbench-endpoint", stub.url, "--llmbench-suite", str(suite), "--llmbench-concurrency", "4",
        "-p", "no:cacheprovider", "-d", "--tx", f"socket={socket_gateway}", "--rsyncdir", str(project), str(project),
        "-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=12)
    assert stub.peak == 4
    [path] = (project / "llmbench_results" / "latest").glob("batch_results_*.json")
    batch = json.loads(path.read_text())
    assert {(row["host"], row["worker"]) for row in batch["tests"]} == {(socket.gethostname(), "gw0")}
    assert batch["load"]["hosts"] == {socket.gethostname(): 12}
