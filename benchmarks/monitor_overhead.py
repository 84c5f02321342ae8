"""How much CPU the hardware monitor costs: process CPU time with it sampling minus without, as % of one core.

The main thread sleeps throughout, as the controller mostly does in an xdist run, so every extra
CPU second is the sampler's. Targets: < 1 % of a core at 0.5 s, < 3 % at 0.1 s.

    python benchmarks/monitor_overhead.py --seconds 60
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from pytest_llmbench.metrics.hardware.monitor import PerformanceMonitor

TARGETS = {0.5: 1.0, 0.1: 3.0}  # interval s -> max overhead, % of one core


def cpu_seconds(span: float, interval: float | None) -> tuple[float, int]:
    """Process CPU time over `span` wall seconds (monitor start and stop included), and the samples taken."""
    before = time.process_time()
    monitor = None if interval is None else PerformanceMonitor(interval=interval)
    if monitor is not None:
        monitor.start()
    time.sleep(span)
    if monitor is not None:
        monitor.stop()
    used = time.process_time() - before
    return used, 0 if monitor is None else monitor.summary()["samples"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of each measured span (default 60)")
    args = parser.parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    baseline, _ = cpu_seconds(args.seconds, None)
    print(f"monitor off: {baseline:.4f} s CPU over {args.seconds:g} s")
    passed = True
    for interval, target in TARGETS.items():
        used, samples = cpu_seconds(args.seconds, interval)
        overhead = (used - baseline) / args.seconds * 100
        per_sample_ms = (used - baseline) / samples * 1000 if samples else float("nan")
        verdict = "PASS" if overhead < target else "FAIL"
        passed &= verdict == "PASS"
        print(
            f"monitor at {interval:g} s: {used:.4f} s CPU, {samples} samples, {per_sample_ms:.3f} ms CPU/sample,"
            f" overhead {overhead:.3f} % of a core (target < {target:g} %, {overhead / target:.2f} of budget) {verdict}"
        )
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
