"""How much CPU scraping a server's /metrics costs: process CPU time with the scraper running minus without, as %
of one core, against a 300-series vLLM-style exposition served by prometheus_client in another process.

The main thread sleeps throughout, as the controller mostly does, so every extra CPU second is the scraper's
(fetch, parse with prometheus_client, map, store). Target: < 1 % of a core at 0.5 s.

    python benchmarks/server_scrape_overhead.py --seconds 60
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time

import requests

from pytest_llmbench.session.server_scrape import ServerScraper, Source

TARGET_PCT = 1.0
EXPORTER = r"""
import sys, time
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
engines = int(sys.argv[1])
registry = CollectorRegistry()
labels = ["model_name", "engine"]
gauges = [Gauge(n, n, labels, registry=registry) for n in
          ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")]
counters = [Counter(n, n, labels, registry=registry) for n in
            ("vllm:prompt_tokens", "vllm:generation_tokens", "vllm:num_preemptions")]
ttft = Histogram("vllm:time_to_first_token_seconds", "ttft", labels, registry=registry,
                 buckets=(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0))
e2e = Histogram("vllm:e2e_request_latency_seconds", "e2e", labels, registry=registry,
                buckets=(0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0))
for engine in range(engines):
    values = ("m", str(engine))
    for metric in gauges: metric.labels(*values).set(0.5)
    for metric in counters: metric.labels(*values).inc(100)
    ttft.labels(*values).observe(0.2); e2e.labels(*values).observe(1.2)
server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
print("PORT", server.server_port, flush=True)
time.sleep(3600)
"""


def cpu_seconds(span: float, url: str | None, interval: float) -> tuple[float, int]:
    before = time.process_time()
    scraper = None
    if url is not None:
        scraper = ServerScraper([Source(url)], interval, (), True, [])
        scraper.start()
    time.sleep(span)
    if scraper is not None:
        scraper.stop()
    return time.process_time() - before, 0 if scraper is None else scraper.store.count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of each measured span (default 60)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between scrapes (default 0.5)")
    parser.add_argument("--engines", type=int, default=7, help="label sets per series (7: about 300 series)")
    args = parser.parse_args(argv)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    exporter = subprocess.Popen([sys.executable, "-c", EXPORTER, str(args.engines)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(exporter.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}/metrics"
        page = requests.get(url, timeout=5).text
        series = sum(1 for line in page.splitlines() if line and not line.startswith("#"))
        print(f"exposition: {series} series, {len(page):,} bytes at {url}")
        baseline, _ = cpu_seconds(args.seconds, None, args.interval)
        used, scrapes = cpu_seconds(args.seconds, url, args.interval)
    finally:
        exporter.kill()
        exporter.wait()
    overhead = (used - baseline) / args.seconds * 100
    per_scrape_ms = (used - baseline) / scrapes * 1000 if scrapes else float("nan")
    verdict = "PASS" if overhead < TARGET_PCT and series >= 300 else "FAIL"
    print(f"scraper off: {baseline:.4f} s CPU over {args.seconds:g} s")
    print(f"scraper at {args.interval:g} s: {used:.4f} s CPU, {scrapes} scrapes, {per_scrape_ms:.3f} ms CPU/scrape,"
          f" overhead {overhead:.3f} % of a core (target < {TARGET_PCT:g} %, {overhead / TARGET_PCT:.2f} of budget)"
          f" {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
