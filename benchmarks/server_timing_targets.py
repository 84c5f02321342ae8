"""Issue 22's targets: server timings joined exactly (S1), the cost of OTLP export (S2), reasoning-aware TTFT (S3).

S1: streamed requests to a server that reports its own queue/prefill/decode split (vLLM's ``metrics`` shape,
    tests/timing_servers.py): every per-request field equals the server's figure to the microsecond, and
    ``client_overhead`` p50 on loopback is <= 1 ms.
S2: a load run (``--llmbench-concurrency 64``, answers after ``--delay-ms``) with ``--llmbench-otlp`` to a live
    OTLP receiver adds <= 2 % to the run's wall time, and to a dead collector (a port that refuses) <= 1 %, against
    the same run without export; the three commands alternate in rotating order. Needs a quiet machine.
S3: a scripted reasoning stream (reasoning for 300 ms, then the answer): ttfot - ttft within 2 ms of the server's
    own split.

Each target runs ``--repeats`` times (5) and prints the median and the worst, the core count and load average.

    python benchmarks/server_timing_targets.py s1 s2 s3 [--requests 200 --repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai_server import launch, plugin_command, run_timed, verdict, write_suite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from otlp_receiver import OTLPReceiver  # test helpers, shared rather than copied
from timing_servers import TimingServer

from pytest_llmbench.http.client import ClientConfig, LLMClient
from pytest_llmbench.http.server_timing import COMPONENTS

FIELD_TOLERANCE_S = 1e-6
OVERHEAD_P50_S = 0.001
OTLP_LIVE, OTLP_DEAD = 0.02, 0.01
TTFOT_TOLERANCE_S = 0.002


def machine() -> str:
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (5 min {five:.2f})"


def report(label: str, values: list[float], limit: float, unit: str, scale: float = 1.0) -> bool:
    """Median and worst of the runs against the limit (the worst decides)."""
    worst = max(values)
    ok = worst <= limit
    print(f"  {label}: median {statistics.median(values) * scale:.4f} {unit}, worst {worst * scale:.4f} {unit} "
          f"(limit {limit * scale:g} {unit}; worst / limit {worst / limit:.3f}) {verdict(ok)}", flush=True)
    return ok


def client(url: str) -> LLMClient:
    return LLMClient(ClientConfig(endpoint=url, retries=0, server_timing=True), model="timing-model")


def s1(args: argparse.Namespace) -> bool:
    print(f"S1 server timings joined exactly: {args.requests} streamed requests per run, {args.repeats} runs")
    errors, overheads = [], []
    for _ in range(args.repeats):
        server = TimingServer("vllm", prefill_s=0.002, token_gap_s=0.001)
        llm = client(server.url)
        try:
            results = [llm.complete(f"p{n}", stream=True) for n in range(args.requests)]
        finally:
            llm.close()
            server.close()
        assert all(r.server_timing == {"source": "vllm", "dropped": {}} for r in results), "a result lost its timing"
        errors.append(max(abs(getattr(r, name) - truth[name]) for r, truth in zip(results, server.truth)
                          for name in COMPONENTS))
        overheads.append(statistics.median(r.client_overhead for r in results))
    ok = report("largest |field - server's figure|", errors, FIELD_TOLERANCE_S, "us", 1e6)
    return report("client_overhead p50", overheads, OVERHEAD_P50_S, "ms", 1e3) and ok


def s2(args: argparse.Namespace) -> bool:
    print(f"S2 OTLP export cost: {args.requests} requests at 64 in flight, {args.delay_ms} ms answers, "
          f"{args.repeats} runs of each command in rotating order")
    walls: dict[str, list[float]] = {"off": [], "live": [], "dead": []}
    receiver = OTLPReceiver()
    with launch(delay_ms=args.delay_ms) as server, tempfile.TemporaryDirectory() as work:
        suite = write_suite(Path(work) / "s2.json", args.requests)
        refusing = stack_socket()
        urls = {"off": None, "live": receiver.url, "dead": f"http://127.0.0.1:{refusing.getsockname()[1]}/v1/traces"}
        base = ("--llmbench-concurrency", "64", "--llmbench-test-files", "none", "--llmbench-html", "none")
        for repeat in range(args.repeats):
            order = list(urls)[repeat % 3:] + list(urls)[:repeat % 3]
            for name in order:
                extra = base + (("--llmbench-otlp", urls[name]) if urls[name] else ())
                walls[name].append(run_timed(plugin_command(suite, server.url, *extra), Path(work)).wall_s)
    receiver.close()
    for name, values in walls.items():
        print(f"  wall time {name}: median {statistics.median(values):.2f} s, worst {max(values):.2f} s")
    spans = len(receiver.named("llmbench request"))
    print(f"  the live receiver got {spans} request spans ({args.requests * args.repeats} sent)")
    live = [w / statistics.median(walls["off"]) - 1 for w in walls["live"]]
    dead = [w / statistics.median(walls["off"]) - 1 for w in walls["dead"]]
    ok = report("added by export to a live receiver", live, OTLP_LIVE, "%", 100)
    return report("added by export to a dead collector", dead, OTLP_DEAD, "%", 100) and ok


def stack_socket() -> socket.socket:
    """A port of 127.0.0.1 that refuses connections: bound for the whole run (closed at exit), never listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def s3(args: argparse.Namespace) -> bool:
    print(f"S3 TTFOT vs TTFT on a reasoning stream (300 ms of reasoning): {args.repeats} runs")
    errors = []
    for _ in range(args.repeats):
        server = TimingServer("vllm", reasoning_s=0.3, prefill_s=0.0, token_gap_s=0.002)
        llm = client(server.url)
        try:
            result = llm.chat([{"role": "user", "content": "think"}], stream=True)
        finally:
            llm.close()
            server.close()
        [truth] = server.truth
        split = truth["answer_after_first"]  # the first answer token after the first (reasoning) token
        errors.append(abs((result.ttfot - result.ttft) - split))
    return report("|(ttfot - ttft) - the server's split|", errors, TTFOT_TOLERANCE_S, "ms", 1e3)


TARGETS = {"s1": s1, "s2": s2, "s3": s3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", choices=[*TARGETS, "all"])
    parser.add_argument("--requests", type=int, default=0, help="requests per run (S1 200, S2 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each target (default 5)")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="S2: the server's answer delay")
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print("machine:", machine())
    ok = True
    for name in TARGETS if "all" in args.targets else args.targets:
        run = argparse.Namespace(**vars(args))
        run.requests = args.requests or {"s1": 200, "s2": 10000, "s3": 1}[name]
        started = time.perf_counter()
        ok &= TARGETS[name](run)
        print(f"  ({time.perf_counter() - started:.1f} s; machine after: {machine()})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
