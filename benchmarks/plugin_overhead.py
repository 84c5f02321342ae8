"""What the plugin costs per test: a sequential suite run against bare pytest tests making the same request.

Both runs talk to the same zero-delay server (benchmarks/openai_server.py, its own process) and send the
same body. The floor is plain pytest (``-p no:llmbench``): one parametrized test function per request
through a module-scoped ``requests.Session``. Each whole command is timed from outside, the commands
alternate, and the medians are compared. Target: plugin / floor <= 1.15.

A third command, not judged, writes the plugin's result files to tmpfs (/dev/shm): its gap to the
plugin run is what creating two files per test costs on the disk under the working folder.

    python benchmarks/plugin_overhead.py --tests 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from openai_server import MODEL, Timing, launch, plugin_command, run_timed, verdict, write_suite

TARGET = 1.15
MAX_TOKENS = 16
TMPFS = Path("/dev/shm")

FLOOR_TESTS = '''
import pytest
import requests

URL = {url!r}


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


@pytest.mark.parametrize("i", range({tests}))
def test_req(i, session):
    reply = session.post(URL, json={{"model": {model!r}, "prompt": {prompt!r} + f" {{i}}",
                                    "max_tokens": {max_tokens}, "stream": False}}, timeout=600)
    reply.raise_for_status()
    assert reply.json()["choices"][0]["text"]
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000, help="tests per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command, alternating (default 3)")
    args = parser.parse_args(argv)
    print("command:", " ".join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="llmbench-overhead-") as tmp, launch() as server:
        work = Path(tmp)
        suite = write_suite(work / "suite.json", args.tests, parameters={"max_tokens": MAX_TOKENS})
        floor_file = work / "test_floor.py"
        floor_file.write_text(FLOOR_TESTS.format(url=f"{server.url}/completions", tests=args.tests, model=MODEL,
                                                 prompt=" ".join(["benchmark"] * 8), max_tokens=MAX_TOKENS))
        outputs = {"floor": None, "plugin": work / "llmbench_results"}
        commands = {
            "floor": [sys.executable, "-m", "pytest", str(floor_file), "-p", "no:cacheprovider", "-q",
                      "-p", "no:llmbench"],
            "plugin": plugin_command(suite, server.url),
        }
        if os.access(TMPFS, os.W_OK):
            outputs["plugin, files on tmpfs"] = Path(tempfile.mkdtemp(prefix="llmbench-overhead-", dir=TMPFS))
            commands["plugin, files on tmpfs"] = plugin_command(
                suite, server.url, "--llmbench-output", str(outputs["plugin, files on tmpfs"]))
        for name, command in commands.items():
            print(f"{name}:", " ".join(command))
        runs: dict[str, list[Timing]] = {name: [] for name in commands}
        try:
            for repeat in range(args.repeats):
                for name, command in commands.items():
                    if outputs[name] is not None:
                        shutil.rmtree(outputs[name], ignore_errors=True)
                    server.stamps(reset=True)
                    runs[name].append(run_timed(command, work))
                    served = len(server.stamps()["received_ns"])
                    if served != args.tests:
                        raise RuntimeError(f"{name} run {repeat + 1} sent {served} requests, not {args.tests}")
                    last = runs[name][-1]
                    print(f"  run {repeat + 1} {name}: {last.wall_s:.2f} s wall, {last.user_s:.2f} s user,"
                          f" {last.sys_s:.2f} s sys", flush=True)
        finally:
            for folder in outputs.values():
                if folder is not None and folder.is_relative_to(TMPFS):
                    shutil.rmtree(folder, ignore_errors=True)
    return report(runs, args.tests)


def report(runs: dict[str, list[Timing]], tests: int) -> int:
    medians = {name: {field: statistics.median(getattr(t, field) for t in timings)
                      for field in ("wall_s", "user_s", "sys_s")} for name, timings in runs.items()}
    for name, m in medians.items():
        print(f"{name:>24}: median {m['wall_s']:.2f} s wall = {m['wall_s'] / tests * 1000:.2f} ms/test;"
              f" CPU {(m['user_s'] + m['sys_s']) / tests * 1000:.2f} ms/test"
              f" ({m['user_s']:.2f} s user, {m['sys_s']:.2f} s sys)")
    floor, plugin = medians["floor"]["wall_s"], medians["plugin"]["wall_s"]
    print(f"plugin overhead: {(plugin - floor) / tests * 1000:.2f} ms/test")
    if "plugin, files on tmpfs" in medians:
        files = plugin - medians["plugin, files on tmpfs"]["wall_s"]
        print(f"  of which result files on this disk (vs tmpfs): {files / tests * 1000:.2f} ms/test")
    ratio = plugin / floor
    print(f"ratio plugin/floor: {ratio:.3f} (target <= {TARGET}) {verdict(ratio <= TARGET)}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
