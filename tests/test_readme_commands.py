"""README command 1, exactly as the README writes it, in a fresh copy of the checkout with only the ``local`` extra.

Every other test runs in an environment that command 2 built (the ``test`` extra included), which is how command 1
once broke unseen: the project's own ``tests/conftest.py`` needed werkzeug, and pytest loads it for any run in the
checkout. Here the command is read from the README (so the two cannot drift) and run by ``bash`` in a copy of the
files git tracks (a clean clone of the working tree), with a fresh virtual environment and nothing of this one's
``PATH``, ``VIRTUAL_ENV`` or ``PYTHONPATH``. Then the same suite runs from a folder outside the checkout, as a user
runs it from a folder of their own.

The install builds llama-cpp-python from source unless pip's cache has its wheel (``.ci/run`` installs the extras
first, so under CI it has): minutes, hence the long timeout and the ``readme`` marker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
INSTALL_TIMEOUT_S = 1800  # a cold build of llama-cpp-python on a busy 2-core machine

pytestmark = [pytest.mark.readme, pytest.mark.real_llm, pytest.mark.timeout(INSTALL_TIMEOUT_S + 600),
              pytest.mark.usefixtures("local_extra")]


def readme_commands() -> list[str]:
    """The README's set-up commands: the indented ``python3 -m venv`` lines of its "Two commands" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    python3 -m venv ")]


def test_the_readme_has_exactly_two_set_up_commands_in_their_order() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert '".[local]"' in commands[0] and "--llmbench-suite" in commands[0]
    assert '".[test,local]"' in commands[1] and commands[1].endswith("&& pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[test,local]"' in ci and re.search(r"^pytest$", ci, re.MULTILINE), (
        ".ci/run must run command 2's install and test command")


def clean_copy(dest: Path) -> Path:
    """The files git tracks, as they are in the working tree: what a clean clone of this change holds."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"git ls-files failed under CI: {listed.stderr.decode(errors='replace')}")
        pytest.skip("not a git checkout: no clean copy to make")
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def fresh_user_env(home_cache: Path) -> dict[str, str]:
    """This machine's environment as a new user's shell has it: no venv of ours, no PYTHONPATH, no CI pytest
    options; pip's own cache kept (so a wheel built once is reused, as on a user's machine)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_XDIST_WORKER",
                        "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_TESTRUNUID"}
           and not k.startswith(("LLMBENCH_", "OPENAI_"))}
    venv_bin = str(Path(sys.prefix) / "bin")
    if sys.prefix != sys.base_prefix:  # drop the venv this test runs in from PATH: `python3` is the machine's
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["LLMBENCH_CACHE_DIR"] = str(home_cache)
    return env


def run_bash(command: str, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def tail(proc: subprocess.CompletedProcess[str]) -> str:
    """The ends of both streams, without pip's notes about package locations this machine does not have."""
    errors = "\n".join(line for line in proc.stderr.splitlines() if not line.lstrip().startswith("WARNING: Location"))
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{errors[-2000:]}"


def test_readme_command_1_passes_in_a_clean_copy_and_from_a_folder_of_ones_own(tmp_path: Path) -> None:
    from pytest_llmbench.session.embedded import cache_dir

    command = readme_commands()[0]
    checkout = clean_copy(tmp_path / "pytest-llmbench")
    env = fresh_user_env(cache_dir())
    first = run_bash(command, checkout, env, INSTALL_TIMEOUT_S)
    assert first.returncode == 0, tail(first)
    out = first.stdout
    assert "werkzeug" not in out + first.stderr and "Unknown config option" not in out + first.stderr, tail(first)
    assert re.search(r"^=+ (\d+) passed in ", out, re.MULTILINE), tail(first)
    assert "llmbench: EMBEDDED model server" in out
    # the venv has only the local extra: had the test extra come along, this run would prove nothing
    listed = run_bash(". .venv/bin/activate && pip list --format=freeze", checkout, env, 120)
    assert "pytest-httpserver" not in listed.stdout.lower() and "werkzeug" not in listed.stdout.lower()

    # The same suite from a folder of one's own, outside the checkout, with both spellings of the option.
    own = tmp_path / "my-project"
    own.mkdir()
    suite = checkout / "example_suites" / "quickstart.json"
    pytest_bin = checkout / ".venv" / "bin" / "pytest"
    checkout_runs = sorted((checkout / "llmbench_results").iterdir())  # command 1's own run
    for spelling in ([f"--llmbench-suite={suite}"], ["--llmbench-suite", str(suite)]):
        run = subprocess.run([str(pytest_bin), *spelling, "-n", "2", "-p", "no:cacheprovider"], cwd=own, env=env,
                             capture_output=True, text=True, timeout=600, check=False, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, tail(run)
        if "=" in spelling[0]:
            assert f"rootdir: {own}" in run.stdout, tail(run)  # not the checkout's, with its ini file
        else:  # pytest read the path as a test path before the plugin loaded: the run says so and how to avoid it
            assert f"rootdir: {checkout}" in run.stdout, tail(run)
            assert f"write `--llmbench-suite={suite}` or add `--rootdir=.` to keep {own}" in run.stdout, tail(run)
        assert (own / "llmbench_results" / "latest").exists()
        assert sorted((checkout / "llmbench_results").iterdir()) == checkout_runs  # nothing written there
