"""Running pytest on a pseudo-terminal, for tests of what a person sees on a terminal (live lines, -v)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest


def run_in_pty(pytester: pytest.Pytester, *args: str) -> str:
    """Run pytest on a pseudo-terminal, as a person would see it."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                            cwd=pytester.path, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    return b"".join(chunks).decode(errors="replace")
