"""Peak memory of a session against a hostile server: a gzip bomb and an endless stream, beside plain answers;
and a /metrics page of 150,000 series whose labels change every scrape.

tests/faultserver.py (real sockets on 127.0.0.1) serves, in this order: a 1 MB gzip body that inflates to 1 GiB
(valid JSON once inflated: a completion whose text is 1 GiB of letters), a stream of server-sent events that
goes on for 60 s as fast as the socket takes it, then plain answers. pytest runs as a subprocess with the default
``--llmbench-max-response-bytes`` (32 MiB) and ``--llmbench-timeout 60``; psutil samples its RSS every 0.1 s.
The floor is the same session with plain answers in place of the two hostile ones. Targets: peak < 200 MB in
each case, both hostile tests failed with ``response exceeded 32 MiB``, every plain result kept.

The second part (issue 29, F2) runs sessions of ``--metrics-tests`` plain answers (50 ms each) while the plugin
scrapes a /metrics page every 0.5 s: the floor with a normal page (a few vLLM series), then a page of 150,000 series
(~6 MB, under the 16 MiB cap) whose labels change on every scrape. Targets: peak RSS < 200 MB, and the tests'
median latency within 1.2 x the floor's (the scraper may cost the GIL some time, never the tests' figures). Each
is run ``--runs`` times (5): median and worst are printed, with the core count and the load average.

    python benchmarks/hostile_memory.py                 # both parts
    python benchmarks/hostile_memory.py --only metrics --runs 1 --metrics-tests 5   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from openai_server import verdict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from faultserver import COMPLETION, FaultServer, Reply

TARGET_MB = 200.0
LATENCY_RATIO = 1.2  # the tests' median latency with the hostile page, at most this times the floor's
SERIES = 150_000
NORMAL_PAGE = ("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n"
               "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 10\n")
MB = 2**20
BOMB_BYTES = 2**30
PLAIN_TESTS = 3
MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}


def bomb() -> Reply:
    """A completion whose text is BOMB_BYTES letters, gzip-compressed to about a thousandth of that."""
    before, after = json.dumps({**COMPLETION, "choices": [{"index": 0, "text": "@"}]}).encode().split(b"@")
    return Reply.gzip_bomb(BOMB_BYTES, before, after)


def endless(seconds: float) -> Reply:
    """Events of 1 KB of text, sent as fast as the client reads them, for ``seconds``; never a [DONE]."""
    event = "data: " + json.dumps({"choices": [{"index": 0, "text": "word " * 200}]}) + "\n\n"

    def events() -> Iterator[str]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            yield event

    return Reply(200, chunks=events(), headers={"Content-Type": "text/event-stream"})


def plain() -> Reply:
    return Reply.json(COMPLETION)


def churning_page(scrape: int) -> str:
    """SERIES series, every label new on every scrape, and the few a vLLM server has at the end."""
    lines = [f'python_noise_total{{scrape="{scrape}",id="{n}"}} {n}' for n in range(SERIES)]
    return "\n".join(lines) + "\n" + NORMAL_PAGE


def session(work: Path, server: FaultServer, replies: list[Reply], interval: float,
            *extra: str) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, exit status) of one pytest session; one test per reply, in order."""
    tests = [{"id": f"t{n}", "name": f"t{n}", "category": "c", "prompt": "p", "stream": n == 1 and not extra}
             for n in range(len(replies))]
    suite = work / "hostile.json"
    suite.write_text(json.dumps({"test_suite_id": "hostile", "tests": tests}))
    server.reply(*replies, path="/v1/completions")
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint",
               server.url_for("/v1"), "--llmbench-model", "m", "--llmbench-retries", "0", "--llmbench-timeout", "60",
               "-p", "no:cacheprovider", "-q", "--llmbench-output", str(work / "out"), *extra]
    print("run:", " ".join(command), flush=True)
    started = time.perf_counter()
    with (work / "session.log").open("w") as log:
        process = psutil.Popen(command, cwd=work, stdout=log, stderr=log)
        peak = 0
        while process.poll() is None:
            try:
                peak = max(peak, process.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(interval)
    return peak / MB, time.perf_counter() - started, process.returncode


def results(folder: Path) -> dict[str, dict]:
    return {r["test_id"]: r for r in (json.loads(p.read_text()) for p in folder.rglob("*_result.json"))}


def answers_part(args: argparse.Namespace) -> bool:
    made = time.perf_counter()
    hostile_bomb = bomb()
    print(f"gzip bomb: {len(hostile_bomb.payload()) / MB:.2f} MB on the wire, {BOMB_BYTES / MB:,.0f} MB inflated"
          f" (made in {time.perf_counter() - made:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="llmbench-hostile-") as tmp, FaultServer() as server:
        server.always(Reply.json(MODELS), path="/v1/models")
        floor_dir, hostile_dir = Path(tmp) / "floor", Path(tmp) / "hostile"
        floor_dir.mkdir()
        hostile_dir.mkdir()
        floor_mb, floor_s, _ = session(floor_dir, server, [plain() for _ in range(2 + PLAIN_TESTS)], args.interval)
        peak_mb, took_s, status = session(hostile_dir, server,
                                          [hostile_bomb, endless(args.stream_seconds)] +
                                          [plain() for _ in range(PLAIN_TESTS)], args.interval)
        saved = results(hostile_dir / "out")
        biggest = max(p.stat().st_size for p in (hostile_dir / "out").rglob("*") if p.name.endswith((".json", ".txt")))
        [batch] = (hostile_dir / "out").rglob("batch_results_*.json")
        rows = json.loads(batch.read_text())["tests"]
    print(f"floor (plain answers only): peak RSS {floor_mb:.1f} MB in {floor_s:.1f} s")
    print(f"hostile: peak RSS {peak_mb:.1f} MB in {took_s:.1f} s (exit status {status}); "
          f"{peak_mb / TARGET_MB:.2f} of the {TARGET_MB:g} MB target, {peak_mb / floor_mb:.2f} x the floor")
    for test_id, what in (("t0", "1 MB -> 1 GiB gzip body"), ("t1", f"{args.stream_seconds:g} s endless stream")):
        result = saved.get(test_id, {})
        print(f"  {what}: success={result.get('success')} error={result.get('error_message')!r} "
              f"text kept {len(result.get('response_text') or ''):,} characters")
    plain_ok = all(saved.get(f"t{n}", {}).get("success") for n in range(2, 2 + PLAIN_TESTS))
    print(f"  plain results kept: {plain_ok} ({PLAIN_TESTS}); batch rows {len(rows)}; largest result file "
          f"{biggest / MB:.1f} MB")
    failed_clearly = all("response exceeded 32 MiB" in (saved.get(t, {}).get("error_message") or "")
                         for t in ("t0", "t1"))
    ok = peak_mb < TARGET_MB and failed_clearly and plain_ok and len(rows) == 2 + PLAIN_TESTS
    print("answers:", verdict(ok))
    return ok


def metrics_session(work: Path, hostile: bool, tests: int, interval: float) -> tuple[float, float, dict]:
    """(peak RSS in MB, the tests' median latency in ms, the batch's server section) of one session."""
    scrapes = iter(range(10**9))
    with FaultServer() as server:
        server.always(Reply.json(MODELS), path="/v1/models")
        server.always(Reply(echo=lambda _: Reply(200, churning_page(next(scrapes)) if hostile else NORMAL_PAGE)),
                      path="/metrics")
        answer = Reply.json(COMPLETION, delay=0.05)
        peak, _, _ = session(work, server, [answer] * tests, interval,
                             "--llmbench-server-metrics", server.url_for("/metrics"))
    [batch] = (work / "out").rglob("batch_results_*.json")
    data = json.loads(batch.read_text())
    return peak, data["aggregate"]["p50_latency_ms"], data.get("server") or {}


def metrics_part(args: argparse.Namespace) -> bool:
    peaks, ratios = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="llmbench-metrics-") as tmp:
            (Path(tmp) / "floor").mkdir()
            (Path(tmp) / "hostile").mkdir()
            _, floor_ms, _ = metrics_session(Path(tmp) / "floor", False, args.metrics_tests, args.interval)
            peak, hostile_ms, server = metrics_session(Path(tmp) / "hostile", True, args.metrics_tests, args.interval)
        source = (server.get("sources") or [{}])[0]
        print(f"run {run + 1}: {SERIES:,}-series churning page: peak RSS {peak:.1f} MB; tests' p50 latency "
              f"{hostile_ms:.1f} ms vs {floor_ms:.1f} ms with a normal page ({hostile_ms / floor_ms:.2f} x); "
              f"scrapes {source.get('scrapes')}, failed {server.get('failed_scrapes')}, "
              f"skipped {server.get('skipped_scrapes')}, series capped {source.get('series_capped')}")
        peaks.append(peak)
        ratios.append(hostile_ms / floor_ms)
    print(f"metrics page: peak RSS median {statistics.median(peaks):.1f} MB, worst {max(peaks):.1f} MB "
          f"(target < {TARGET_MB:g}); latency ratio median {statistics.median(ratios):.2f}, worst {max(ratios):.2f} "
          f"(target <= {LATENCY_RATIO:g}); {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = max(peaks) < TARGET_MB and statistics.median(ratios) <= LATENCY_RATIO
    print("metrics page:", verdict(ok))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream-seconds", type=float, default=60.0, help="how long the stream goes on (60)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between RSS samples (0.1)")
    parser.add_argument("--only", choices=("answers", "metrics"), help="run one part only")
    parser.add_argument("--runs", type=int, default=5, help="runs of the metrics page part (5)")
    parser.add_argument("--metrics-tests", type=int, default=20, help="tests per metrics page session (20)")
    args = parser.parse_args(argv)
    print("command:", " ".join([sys.executable, *sys.argv]))
    ok = True
    if args.only != "metrics":
        ok = answers_part(args) and ok
    if args.only != "answers":
        ok = metrics_part(args) and ok
    print(verdict(ok))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
