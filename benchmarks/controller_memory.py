"""The controller's peak memory over a long run with large answers, beside bare pytest's own.

pytest runs as a subprocess against benchmarks/openai_server.py answering 8 KB texts; psutil samples
the controller's RSS every 0.2 s. With ``-n`` the controller is the main pytest process (its workers
are sampled too, for information); sequentially (``--workers 0``) it is the only process, and also
sends the requests. Both modes run by default. The floor is bare pytest (``-p no:llmbench``) running
as many trivial tests in the same mode: what pytest itself keeps per test. Target: controller peak
< 150 MB in every mode.

    python benchmarks/controller_memory.py --tests 10000 --answer-bytes 8192 --workers 2 0
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from openai_server import RunningServer, launch, plugin_command, verdict, write_suite

TARGET_MB = 150.0
MB = 2**20

TRIVIAL_TESTS = '''
import pytest


@pytest.mark.parametrize("i", range({tests}))
def test_trivial(i):
    assert i >= 0
'''


@dataclass
class Peaks:
    controller_mb: float
    worker_mb: float  # the largest worker's peak; 0 without workers
    wall_s: float
    samples: int


def sampled_run(command: list[str], cwd: Path, interval: float) -> Peaks:
    """Run command, sampling RSS of it and its children until it exits; a failed run stops the benchmark."""
    print("run:", " ".join(command), flush=True)
    log = cwd / f"pytest-{time.monotonic_ns()}.log"
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    controller = psutil.Process(process.pid)
    peak = worker_peak = 0
    samples = 0
    while process.poll() is None:
        try:
            peak = max(peak, controller.memory_info().rss)
            for child in controller.children(recursive=True):
                worker_peak = max(worker_peak, child.memory_info().rss)
        except psutil.NoSuchProcess:  # it or a worker ended between two calls
            pass
        samples += 1
        time.sleep(interval)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{log.read_text()[-3000:]}")
    return Peaks(peak / MB, worker_peak / MB, wall, samples)


def measure(server: RunningServer, work: Path, tests: int, workers: int, interval: float) -> bool:
    """One mode: the floor, then the plugin run; prints both and returns whether the target holds."""
    mode = ["-n", str(workers)] if workers else []
    floor = sampled_run([sys.executable, "-m", "pytest", str(work / "test_trivial.py"), "-p", "no:cacheprovider",
                         "-q", "-p", "no:llmbench", *mode], work, interval)
    server.stamps(reset=True)
    shutil.rmtree(work / "llmbench_results", ignore_errors=True)
    plugin = sampled_run(plugin_command(work / "suite.json", server.url, *mode), work, interval)
    served = len(server.stamps()["received_ns"])
    if served != tests:
        raise RuntimeError(f"the server saw {served} requests, not {tests}")
    role = (f"the main pytest process with -n {workers} (receives the results; the workers send the requests)"
            if workers else "the only pytest process (sequential: it also sends the requests)")
    print(f"controller: {role}")
    for name, peaks in (("floor (bare pytest, trivial tests)", floor), ("plugin", plugin)):
        others = f", largest worker {peaks.worker_mb:.1f} MB" if workers else ""
        print(f"  {name:>34}: controller peak RSS {peaks.controller_mb:.1f} MB{others}"
              f" ({peaks.samples} samples over {peaks.wall_s:.1f} s)")
    extra = plugin.controller_mb - floor.controller_mb
    print(f"  plugin's own cost over the floor: {extra:.1f} MB, imports included ({extra * MB / tests / 1024:.1f}"
          f" KB/test); ratio plugin/floor {plugin.controller_mb / floor.controller_mb:.2f}")
    ok = plugin.controller_mb < TARGET_MB
    print(f"  controller peak {plugin.controller_mb:.1f} MB = {plugin.controller_mb / TARGET_MB:.2f} of the"
          f" {TARGET_MB:g} MB target: {verdict(ok)}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10000, help="tests in the run (default 10000)")
    parser.add_argument("--answer-bytes", type=int, default=8192, help="length of each answer (default 8192)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 0],
                        help="xdist worker counts to measure, 0 = sequential (default: 2 0)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between RSS samples (default 0.2)")
    args = parser.parse_args(argv)
    print("command:", " ".join([sys.executable, *sys.argv]))
    with tempfile.TemporaryDirectory(prefix="llmbench-memory-") as tmp, launch(0, args.answer_bytes) as server:
        work = Path(tmp)
        (work / "test_trivial.py").write_text(TRIVIAL_TESTS.format(tests=args.tests))
        write_suite(work / "suite.json", args.tests)
        verdicts = [measure(server, work, args.tests, workers, args.interval) for workers in args.workers]
    print(verdict(all(verdicts)))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
