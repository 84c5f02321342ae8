"""How close ``-n 8`` comes to eight requests always in flight, against a server that answers after 200 ms.

The ideal rate is workers / delay (8 / 0.2 s = 40 requests/s). The rate is measured two ways:
(a) from the batch file the plugin writes (its request_throughput, and tests / its wall time), whose
wall time starts when pytest configures the plugin, so it includes starting the xdist workers; and
(b) from the server's own stamps: first request to last answer, and the steady state while every worker
is sending (from the last worker's first request to the first worker's last request; workers are told
apart by their keep-alive connection). Target: (a) >= 90 % of the ideal.

    python benchmarks/concurrency.py --tests 400 --workers 8 --delay-ms 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from openai_server import (
    RunningServer,
    Timing,
    launch,
    plugin_command,
    run_timed,
    verdict,
    write_suite,
)

TARGET = 0.9


def rate_line(label: str, rate: float, ideal: float, judged: bool = False) -> bool:
    ratio = rate / ideal
    ok = ratio >= TARGET
    mark = f"{verdict(ok)}{' (judged)' if judged else ''}"
    print(f"  {label:<58} {rate:6.2f} req/s  {ratio:5.3f} of ideal  {mark}")
    return ok


def stamped_run(server: RunningServer, command: list[str], cwd: Path) -> tuple[int, Timing, dict[str, list[int]]]:
    """Run a command in a fresh folder; returns when it was launched (perf_counter_ns), its timing and the stamps."""
    print("plugin:", " ".join(command), flush=True)
    cwd.mkdir()
    server.stamps(reset=True)
    launched_ns = time.perf_counter_ns()
    timing = run_timed(command, cwd)
    return launched_ns, timing, server.stamps()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=400, help="tests in the suite (default 400)")
    parser.add_argument("--workers", type=int, default=8, help="xdist workers, -n (default 8)")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="server delay per answer (default 200)")
    args = parser.parse_args(argv)
    print("command:", " ".join([sys.executable, *sys.argv]))
    ideal = args.workers / (args.delay_ms / 1000.0)
    with tempfile.TemporaryDirectory(prefix="llmbench-concurrency-") as tmp, launch(args.delay_ms) as server:
        work = Path(tmp)
        command = plugin_command(write_suite(work / "suite.json", args.tests), server.url, "-n", str(args.workers))
        launched_ns, timing, stamps = stamped_run(server, command, work / "distributed")
        [batch_path] = (work / "distributed" / "llmbench_results").glob("batch_results_*.json")
        aggregate = json.loads(batch_path.read_text())["aggregate"]
        # the same start-up without xdist: the difference is what spawning the workers costs
        small = plugin_command(write_suite(work / "small.json", args.workers), server.url)
        small_launched_ns, _, small_stamps = stamped_run(server, small, work / "sequential")
    sequential_start = (min(small_stamps["received_ns"]) - small_launched_ns) / 1e9

    received, answered, ports = stamps["received_ns"], stamps["answered_ns"], stamps["client_ports"]
    if len(received) != args.tests:
        raise RuntimeError(f"the server saw {len(received)} requests, not {args.tests}")
    first, last = min(received), max(answered)
    per_worker: dict[int, list[int]] = {}
    for stamp, port in zip(received, ports):
        per_worker.setdefault(port, []).append(stamp)
    all_sending = max(min(s) for s in per_worker.values())
    one_done = min(max(s) for s in per_worker.values())
    steady = sum(all_sending <= s < one_done for s in received)
    steady_span = (one_done - all_sending) / 1e9
    wall = aggregate["wall_time_s"]

    print(f"ideal: {args.workers} workers / {args.delay_ms:g} ms = {ideal:.1f} req/s;"
          f" {args.tests} tests ideally take {args.tests / ideal:.2f} s")
    print(f"pytest command: {timing.wall_s:.2f} s wall; batch wall_time_s {wall:.2f} s;"
          f" server busy (first request to last answer) {(last - first) / 1e9:.2f} s")
    print(f"connections (workers) seen by the server: {len(per_worker)}")
    print("(a) from the batch file:")
    passed = rate_line("aggregate.request_throughput", aggregate["request_throughput"], ideal, judged=True)
    rate_line("tests / batch wall_time_s", args.tests / wall, ideal)
    rate_line("tests / whole pytest command wall time", args.tests / timing.wall_s, ideal)
    print("(b) from the server's stamps:")
    rate_line("first request to last answer", args.tests / ((last - first) / 1e9), ideal)
    if steady_span > 0:
        rate_line(f"steady state, all {len(per_worker)} sending ({steady} requests in {steady_span:.2f} s)",
             steady / steady_span, ideal)
    print("where the time goes:")
    start = (first - launched_ns) / 1e9
    print(f"  launch to first request: {start:.2f} s; without -n {sequential_start:.2f} s, so xdist start-up"
          f" ({args.workers} workers on {os.cpu_count()} cores) costs {start - sequential_start:.2f} s")
    print(f"  first request to the last worker's first request (workers ramping up): "
          f"{(all_sending - first) / 1e9:.2f} s")
    print(f"  last answer to the end of the command (teardown, batch file, exit): "
          f"{(launched_ns + timing.wall_s * 1e9 - last) / 1e9:.2f} s")
    print(f"  batch wall_time_s - ideal: {wall - args.tests / ideal:.2f} s; batch wall_time_s outside the"
          f" server's busy span: {wall - (last - first) / 1e9:.2f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
