"""How close do read_stream's TTFT and ITL come to the truth, with several requests in flight?

Starts benchmarks/sse_server.py in its own process (so the client threads do not share its GIL),
sends ``--requests`` streamed requests with ``--concurrency`` threads (each its own
requests.Session) and compares the client's p50/p99 TTFT and ITL with two truths:

* nominal: the schedule the server was told to keep (TTFT, then one token every gap);
* actual: the server's own stamp taken just before each token's write. The difference between the
  two is the server's lateness (sleep wake-up, thread scheduling), not the client's error.

Targets: |p50 error| <= 2 ms, |p99 error| <= 5 ms. Run from the repository root:

    python benchmarks/latency_accuracy.py [--requests 64 --concurrency 8 --tokens 32 --warmup 1]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from pytest_llmbench.http.sse import StreamOutcome, read_stream

TARGETS_MS = {"p50": 2.0, "p99": 5.0}


@dataclass
class Sample:
    outcome: StreamOutcome
    received_ns: int  # the server's stamp when the request arrived
    token_ns: list[int]  # the server's stamps, just before each token's write


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


def drive(base: str, args: argparse.Namespace) -> dict[str, StreamOutcome]:
    """Each thread takes the next request number until all are sent: --concurrency stay in flight."""
    outcomes: dict[str, StreamOutcome] = {}
    numbers = iter(range(args.requests))
    lock = threading.Lock()
    body = {"model": "schedule", "messages": [{"role": "user", "content": "count"}], "stream": True}

    def one(session: requests.Session, request_id: str) -> StreamOutcome:
        sent_ns = time.perf_counter_ns()
        with session.post(f"{base}/v1/chat/completions", json=body, headers={"X-Request-Id": request_id},
                          stream=True, timeout=(5, 10)) as response:
            response.raise_for_status()
            return read_stream(response, "chat", sent_ns, time.monotonic() + 30)

    def worker(index: int) -> None:
        with requests.Session() as session:
            for warmup in range(args.warmup):  # untimed: opens the connection, as benchmark tools do
                one(session, f"warmup-{index}-{warmup}")
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                outcome = one(session, f"r{number}")
                with lock:
                    outcomes[f"r{number}"] = outcome

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def report(name: str, measured: list[float], nominal: float, actual: list[float], paired: list[float]) -> bool:
    """Print one metric's rows; True when every target holds against the server's actual send times."""
    ok = True
    for stat, limit in TARGETS_MS.items():
        pct = int(stat[1:])
        got, real = percentile(measured, pct), percentile(actual, pct)
        err_nominal, err_actual = got - nominal, got - real
        verdict_nominal = "PASS" if abs(err_nominal) <= limit else "FAIL"
        verdict_actual = "PASS" if abs(err_actual) <= limit else "FAIL"
        ok = ok and verdict_actual == "PASS"
        print(f"{name:4} {stat}  measured {got:8.3f}  nominal {nominal:7.3f} err {err_nominal:+7.3f} {verdict_nominal}"
              f"  | server actual {real:8.3f} err {err_actual:+7.3f} {verdict_actual}  (target |err| <= {limit:g})")
    print(f"{name:4} per-sample error (measured - server actual), ms: p50 {percentile(paired, 50):.3f}"
          f"  p99 {percentile(paired, 99):.3f}  max {max(paired):.3f}")
    return ok


def check_counts(samples: list[Sample], tokens: int) -> bool:
    errors = [s.outcome.error.message for s in samples if s.outcome.error]
    exact = sum(s.outcome.completion_tokens == tokens == len(s.outcome.content_ns) for s in samples)
    print(f"stream errors: {len(errors)} {errors[:3] if errors else ''}")
    print(f"completion_tokens == server usage ({tokens}) == content chunks: {exact}/{len(samples)} "
          f"{'PASS' if exact == len(samples) else 'FAIL'}")
    return not errors and exact == len(samples)


def check_timing(samples: list[Sample], args: argparse.Namespace) -> bool:
    ms = 1e6
    ttft = [(s.outcome.content_ns[0] - s.outcome.sent_ns) / ms for s in samples]
    ttft_actual = [(s.token_ns[0] - s.outcome.sent_ns) / ms for s in samples]
    itl = [gap * 1000 for s in samples for gap in s.outcome.itl]
    itl_actual = [(b - a) / ms for s in samples for a, b in zip(s.token_ns, s.token_ns[1:])]
    transit = [(s.received_ns - s.outcome.sent_ns) / ms for s in samples]
    overshoot = [(s.token_ns[0] - s.received_ns) / ms - args.ttft_ms for s in samples]
    print("why actual differs from nominal (server side, not the client), ms:")
    for name, values in (("request transit (client send -> server has the body)", transit),
                         ("first-token sleep overshoot", overshoot)):
        print(f"  {name}: p50 {percentile(values, 50):.3f}  p99 {percentile(values, 99):.3f}  max {max(values):.3f}")
    ok = report("TTFT", ttft, args.ttft_ms, ttft_actual, [m - a for m, a in zip(ttft, ttft_actual)])
    ok = report("ITL", itl, args.gap_ms, itl_actual, [m - a for m, a in zip(itl, itl_actual)]) and ok
    delay = [(got - sent) / ms for s in samples for got, sent in zip(s.outcome.content_ns, s.token_ns)]
    print(f"every token, client stamp - server stamp, ms: p50 {percentile(delay, 50):.3f}"
          f"  p99 {percentile(delay, 99):.3f}  max {max(delay):.3f}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests per session first (0: cold)")
    args = parser.parse_args()
    print("command:", shlex.join(["python", *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    server, base = start_server(args)
    try:
        started = time.monotonic()
        outcomes = drive(base, args)
        wall = time.monotonic() - started
        stamps = requests.get(f"{base}/stamps", timeout=5).json()
    finally:
        server.terminate()
        server.wait()
    samples = [Sample(outcome, stamps[rid]["received_ns"], stamps[rid]["content_ns"])
               for rid, outcome in sorted(outcomes.items())]
    print(f"{len(samples)} timed requests after {args.warmup} warm-up per session, {args.concurrency} in flight,"
          f" {args.tokens} tokens each, {wall:.1f} s")
    ok = check_counts(samples, args.tokens) & check_timing(samples, args)
    print("RESULT", "PASS" if ok else "FAIL", "(timing verdict against the server's actual send times)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
