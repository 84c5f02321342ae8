"""How close do the plugin's TTFT and ITL come to the truth, through a real pytest run, with and without -n?

Starts benchmarks/sse_server.py in its own process: each streamed chat request waits ``--ttft-ms`` after it
arrived, then sends ``--tokens`` one-token chunks ``--gap-ms`` apart, stamping ``perf_counter_ns`` just before
each write (on Linux one clock for every process). A suite of ``--requests`` streamed tests runs through the
plugin as users run it (``pytest --llmbench-suite ... --llmbench-stream``), once sequentially and once per
``--workers`` value under xdist; each test's result file is then paired with the server's own stamps for it:

* TTFT error = the result's ``ttft`` - (first token written - request received), so it also holds the
  request's transit to the server (the client's send stamp is not in the result): an upper bound;
* ITL error = each of the result's ``itl`` gaps - the gap between the server's two writes.

Targets on those per-request errors: |p50| <= 2 ms, |p99| <= 5 ms. Completion tokens must equal the server's.
Run from the repository root:

    python benchmarks/latency_accuracy.py [--requests 48 --tokens 32 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

TARGETS_MS = {"p50": 2.0, "p99": 5.0}


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, str(Path(__file__).with_name("sse_server.py")), "--ttft-ms", str(args.ttft_ms),
               "--gap-ms", str(args.gap_ms), "--tokens", str(args.tokens)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline() if server.stdout else ""
    if not line.startswith("PORT "):
        server.kill()
        raise SystemExit(f"the schedule server did not start: {line!r}")
    return server, f"http://127.0.0.1:{line.split()[1]}"


def write_suite(path: Path, requests_count: int) -> Path:
    tests = [{"id": f"req-{n}", "name": f"req-{n}", "category": "latency",
              "messages": [{"role": "user", "content": f"req-{n}"}]} for n in range(requests_count)]
    path.write_text(json.dumps({"test_suite_id": "latency", "tests": tests}))
    return path


def run_pytest(base: str, suite: Path, output: Path, workers: int) -> float:
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint", f"{base}/v1",
               "--llmbench-model", "schedule", "--llmbench-stream", "--llmbench-no-eval",
               "--llmbench-output", str(output), "-p", "no:cacheprovider", *(["-n", str(workers)] if workers else [])]
    print("  $", shlex.join(command), flush=True)
    started = time.monotonic()
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=suite.parent)
    if done.returncode != 0:
        raise SystemExit(f"the pytest run failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def errors(output: Path, stamps: dict[str, dict[str, list[int] | int]], tokens: int) -> tuple[list, list, int]:
    """Per-request TTFT errors, per-gap ITL errors (ms) and how many results counted every token."""
    ttft_err, itl_err, exact = [], [], 0
    for path in sorted((output / "latest").glob("req-*_result.json")):  # the run folder
        result = json.loads(path.read_text())
        stamp = stamps[result["test_id"]]
        written = stamp["content_ns"]
        assert isinstance(written, list) and isinstance(stamp["received_ns"], int)
        ttft_err.append(result["ttft"] * 1000 - (written[0] - stamp["received_ns"]) / 1e6)
        itl_err += [gap * 1000 - (b - a) / 1e6 for gap, a, b in zip(result["itl"], written, written[1:])]
        exact += result["completion_tokens"] == tokens == len(result["itl"]) + 1 and not result["tokens_estimated"]
    return ttft_err, itl_err, exact


def judge(name: str, values: list[float]) -> bool:
    ok = True
    cells = []
    for stat, limit in TARGETS_MS.items():
        value = percentile(values, int(stat[1:]))
        ok = ok and abs(value) <= limit
        cells.append(f"{stat} {value:+.3f}")
    print(f"    {name} error, ms: {'  '.join(cells)}  max {max(values):+.3f}  (target |p50| <= 2, |p99| <= 5)"
          f" {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, nargs="*", default=[2], help="xdist worker counts besides no -n")
    args = parser.parse_args()
    print("command:", shlex.join(["python", *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="llmbench-latency-") as tmp:
        suite = write_suite(Path(tmp) / "latency.json", args.requests)
        for workers in [0, *args.workers]:
            server, base = start_server(args)
            try:
                print(f"{'sequential' if not workers else f'-n {workers}'}: {args.requests} streamed tests,"
                      f" {args.tokens} tokens each", flush=True)
                wall = run_pytest(base, suite, Path(tmp) / f"out-{workers}", workers)
                stamps = requests.get(f"{base}/stamps", timeout=5).json()
            finally:
                server.terminate()
                server.wait()
            ttft_err, itl_err, exact = errors(Path(tmp) / f"out-{workers}", stamps, args.tokens)
            print(f"    {len(ttft_err)} results in {wall:.1f} s; completion_tokens == the server's {args.tokens}:"
                  f" {exact}/{len(ttft_err)} {'PASS' if exact == len(ttft_err) == args.requests else 'FAIL'}")
            ok = judge("TTFT (upper bound: includes the request's transit)", ttft_err) & ok
            ok = judge("ITL", itl_err) & ok and exact == args.requests
    print("RESULT", "PASS" if ok else "FAIL", "(per-request errors against the server's own send times)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
