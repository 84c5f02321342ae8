"""The load-generation targets L1-L6 of issue 14, each printing its figure, its ratio and PASS/FAIL.

    python benchmarks/load_targets.py L1            # or L2 ... L6, or all
    python benchmarks/load_targets.py L3 --requests 1000   # smaller, for a quick look

L1 in flight without processes: one process, --llmbench-concurrency 64, answers after 500 ms, 2,000 requests:
   request rate over the requests' span >= 95 % of 64 / 0.5 s; the process's peak RSS < 150 MB.
L2 streams: --llmbench-concurrency 128 (at most -n 2), streams of 40 tokens 25 ms apart after 100 ms, 2,000
   requests: >= 90 % of the ideal rate; TTFT error against the server's own send times p50 <= 2 ms, p99 <= 10 ms,
   and no worse than AIPerf's at the same concurrency in the same run (when AIPerf is installed). Judged from one
   process, as users run it by default; the same with -n 2 is printed beside with its own marks.
L3 drive: zero-delay server, 32 in flight, 4,000 requests: request rate >= AIPerf's, end-to-end wall time no
   longer than AIPerf's. Judged with -n 2 (AIPerf too sends from processes of its own); one process beside.
L4 rate: --llmbench-request-rate 50 (Poisson), 2,000 requests: achieved rate within 2 % of 50, coefficient of
   variation of the server-side inter-arrival gaps within 0.05 of 1.0, median schedule_lag < 2 ms.
L5 overhead: 2,000 sequential tests with --llmbench-test-files none <= 1.05 x bare pytest making the same
   requests (benchmarks/plugin_overhead.py's floor); the default mode's ratio printed too.
L6 a real sweep: --llmbench-sweep concurrency=1,2,4 against the embedded model (needs llama-cpp-python and a
   model) finishes in under 5 minutes and names its knee.

AIPerf is found at $AIPERF (default /tmp/aiperf-venv/venv/bin/aiperf) with a tokenizer folder at
$AIPERF_TOKENIZER (default /tmp/aiperf-venv/tokdir); see ../shared/notes/peer-aiperf.md. Without it, the
peer columns say "not installed". Figures from a shared, busy machine vary from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

from openai_server import HERE, launch, plugin_command, verdict, write_suite
from sse_server import launch as launch_schedule
from sse_server import stamps

from pytest_llmbench.session.load.plan import arrivals

AIPERF = Path(os.environ.get("AIPERF", "/tmp/aiperf-venv/venv/bin/aiperf"))
AIPERF_TOKENIZER = Path(os.environ.get("AIPERF_TOKENIZER", "/tmp/aiperf-venv/tokdir"))


def line(label: str, figure: str, ok: bool | None) -> bool:
    mark = "" if ok is None else verdict(ok)
    print(f"  {label:<58} {figure:<34} {mark}", flush=True)
    return ok is not False


def run_plugin(suite: Path, url: str, cwd: Path, *extra: str) -> tuple[dict[str, Any], float, int]:
    """One plugin session: its batch file, its wall time seen from outside, and its peak RSS in kB."""
    command = plugin_command(suite, url, *extra)
    print("plugin:", " ".join(command), flush=True)
    cwd.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):
        raise RuntimeError(f"plugin run exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    [batch] = (cwd / "llmbench_results" / "latest").glob("batch_results_*.json")  # the run folder
    return json.loads(batch.read_text()), wall, max(peak, before)


def run_aiperf(url: str, requests: int, concurrency: int, cwd: Path, *, streaming: bool = False,
               rate: float | None = None, extra: tuple[str, ...] = (),
               dataset: tuple[str, ...] | None = None, endpoint_type: str | None = None) -> dict[str, Any] | None:
    """AIPerf on the same server: its summary (ms figures) with its end-to-end wall time, or None. ``dataset``
    replaces the file of short prompts (e.g. AIPerf's synthetic options)."""
    if not AIPERF.exists():
        return None
    cwd.mkdir(parents=True, exist_ok=True)
    prompts = cwd / "prompts.jsonl"
    if dataset is None:
        prompts.write_text("".join(json.dumps({"text": f"benchmark prompt {n}"}) + "\n" for n in range(requests)))
        dataset = ("--input-file", str(prompts), "--custom-dataset-type", "single_turn",
                   "--dataset-sampling-strategy", "sequential")
    command = [str(AIPERF), "profile", "--model", "bench-model", "--tokenizer", str(AIPERF_TOKENIZER), "--url",
               url.removesuffix("/v1"), "--endpoint-type", endpoint_type or ("chat" if streaming else "completions"),
               *dataset, "--concurrency", str(concurrency),
               "--request-count", str(requests), "--use-server-token-count", "--ui-type", "none",
               "--artifact-dir", str(cwd / "out"), *(("--streaming",) if streaming else ()),
               *(("--request-rate", str(rate)) if rate else ()), *extra]
    print("aiperf:", " ".join(command), flush=True)
    # AIPerf reads AIPERF_* variables as its own settings: ours (AIPERF_TOKENIZER is a folder) must not reach it
    env = {key: value for key, value in os.environ.items() if key not in ("AIPERF", "AIPERF_TOKENIZER")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    found = list((cwd / "out").rglob("profile_export_aiperf.json"))
    if done.returncode != 0 or not found:
        print(f"  aiperf failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
        return None
    summary = json.loads(found[0].read_text())
    summary["wall_s"] = wall
    records = list((cwd / "out").rglob("profile_export.jsonl"))
    summary["records"] = [json.loads(x) for x in records[0].read_text().splitlines()] if records else []
    return summary


def aiperf_value(summary: dict[str, Any], key: str, stat: str = "avg") -> float | None:
    section = summary.get(key) or {}
    return section.get(stat) if isinstance(section, dict) else None


def l1(args: argparse.Namespace, work: Path) -> bool:
    print("L1 in flight without processes: one process, concurrency 64, 500 ms answers")
    with launch(delay_ms=500) as server:
        suite = write_suite(work / "l1.json", args.requests or 2000)
        batch, wall, rss_kb = run_plugin(suite, server.url, work / "l1", "--llmbench-concurrency", "64")
        bare, _, _ = run_plugin(suite, server.url, work / "l1-bare", "--llmbench-concurrency", "64",
                                "--llmbench-test-files", "none")
    rate = batch["aggregate"]["request_throughput"]
    ideal = 64 / 0.5
    ok = line("request rate over the requests' span", f"{rate:.1f} req/s = {rate / ideal:.3f} of {ideal:.0f}",
              rate / ideal >= 0.95)
    bare_rate = bare["aggregate"]["request_throughput"]
    line("the same with --llmbench-test-files none", f"{bare_rate:.1f} req/s = {bare_rate / ideal:.3f}", None)
    line("latency p50 / p99 (the server waits 500 ms)",
         f"{batch['aggregate']['p50_latency_ms']:.1f} / {batch['aggregate']['p99_latency_ms']:.1f} ms", None)
    ok &= line("peak RSS of the pytest process", f"{rss_kb / 1024:.0f} MB (target < 150)", rss_kb / 1024 < 150)
    line("end-to-end wall time", f"{wall:.1f} s", None)
    return ok


def l2(args: argparse.Namespace, work: Path) -> bool:
    print("L2 streams: concurrency 128 from one process (judged) and over -n 2, TTFT 100 ms then 40 tokens 25 ms apart")
    requests = args.requests or 2000
    with launch_schedule(100, 25, 40) as (url, port):
        suite = work / "l2.json"
        cases = [{"id": f"s{n}", "name": f"Stream {n}", "category": "bench", "stream": True,
                  "messages": [{"role": "user", "content": f"stream {n}"}]} for n in range(requests)]
        suite.write_text(json.dumps({"test_suite_id": "streams", "tests": cases}))
        runs = {}
        for label, extra in (("one process", ()), ("-n 2", ("-n", "2"))):
            batch, wall, _ = run_plugin(suite, url, work / f"l2{len(runs)}", "--llmbench-concurrency", "128", *extra,
                                        "--llmbench-model", "schedule",
                                        "--llmbench-test-files", "none", "--llmbench-timeout", "60")
            runs[label] = (batch["aggregate"]["request_throughput"], _ttft_errors(batch, stamps(port)), wall)
        peer = run_aiperf(url, requests, 128, work / "l2-aiperf", streaming=True,
                          extra=("--extra-inputs", "max_tokens:40"))
        peer_stamps = stamps(port)
    ideal = 128 / (0.1 + 39 * 0.025)
    peer_errors = aiperf_ttft_errors(peer, peer_stamps) if peer is not None else []
    q99 = _pct(peer_errors, 99) if peer_errors else None
    ok = True
    for label, (rate, errors, wall) in runs.items():
        judged = label == "one process"  # at most -n 2, as users run it by default
        p50, p99 = _pct(errors, 50), _pct(errors, 99)
        passed = line(f"({label}) request rate over the requests' span",
                      f"{rate:.1f} req/s = {rate / ideal:.3f} of {ideal:.0f}", rate / ideal >= 0.9)
        passed &= line(f"({label}) TTFT error vs the server's send times (p50, p99)", f"{p50:+.2f} ms, {p99:+.2f} ms",
                       abs(p50) <= 2 and p99 <= 10)
        if q99 is not None:
            passed &= line(f"({label}) p99 TTFT error no worse than AIPerf's", f"{p99:.2f} vs {q99:.2f} ms", p99 <= q99)
        line(f"({label}) end-to-end wall time", f"{wall:.1f} s{'' if judged else ' (not judged)'}", None)
        ok &= passed or not judged
    if peer is None:
        line("AIPerf at concurrency 128", "not installed", None)
    else:
        if peer_errors:
            line("AIPerf TTFT error (p50, p99)", f"{_pct(peer_errors, 50):+.2f} ms, {q99:+.2f} ms", None)
        peer_rate = aiperf_value(peer, "request_throughput") or 0.0
        line("AIPerf request rate", f"{peer_rate:.1f} req/s = {peer_rate / ideal:.3f} of {ideal:.0f}", None)
    return ok


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else float("nan")


def _ttft_error(client_ms: float | None, stamp: dict[str, Any] | None) -> float | None:
    """A client's TTFT minus the server's own (first token written - request received), in ms."""
    if not stamp or client_ms is None or not stamp["content_ns"]:
        return None
    return client_ms - (stamp["content_ns"][0] - stamp["received_ns"]) / 1e6


def _ttft_errors(batch: dict[str, Any], stamps: dict[str, Any]) -> list[float]:
    """The plugin's TTFT errors, matched to the server's stamps by prompt."""
    found = (_ttft_error(None if row.get("ttft") is None else row["ttft"] * 1000,
                         stamps.get(f"stream {row['test_id'][1:]}")) for row in batch["tests"])
    return [error for error in found if error is not None]


def aiperf_ttft_errors(summary: dict[str, Any], stamps: dict[str, Any]) -> list[float]:
    """AIPerf's TTFT errors, matched to the server's stamps by the request id it sends."""
    found = (_ttft_error(((record.get("metrics") or {}).get("time_to_first_token") or {}).get("value"),
                         stamps.get((record.get("metadata") or {}).get("x_request_id")))
             for record in summary.get("records") or [])
    return [error for error in found if error is not None]


def l3(args: argparse.Namespace, work: Path) -> bool:
    print("L3 drive: zero-delay server, 32 in flight (-n 2, as AIPerf runs its workers in processes of their own)")
    requests = args.requests or 4000
    with launch(delay_ms=0) as server:
        suite = write_suite(work / "l3.json", requests)
        runs = {}
        for label, extra in (("-n 2", ("-n", "2")), ("one process", ())):
            server.stamps(reset=True)
            batch, wall, _ = run_plugin(suite, server.url, work / f"l3{len(runs)}", "--llmbench-concurrency", "32",
                                        "--llmbench-test-files", "none", *extra, *args.plugin_args)
            runs[label] = (batch["aggregate"]["request_throughput"], wall, _server_rate(server.stamps()))
        peer = run_aiperf(server.url, requests, 32, work / "l3-aiperf")
    for label, (rate, wall, at_server) in runs.items():
        line(f"plugin ({label}): rate over the requests' span; at the server",
             f"{rate:.0f} req/s; {at_server:.0f} req/s", None)
        line(f"plugin ({label}): end-to-end wall time", f"{wall:.1f} s", None)
    if peer is None:
        line("AIPerf", "not installed", None)
        return True
    rate, wall, _ = runs["-n 2"]
    peer_rate = aiperf_value(peer, "request_throughput") or 0.0
    ok = line("request rate vs AIPerf's (-n 2)", f"{rate:.0f} vs {peer_rate:.0f} req/s = {rate / peer_rate:.2f}x",
              rate >= peer_rate)
    ok &= line("wall time vs AIPerf's (-n 2)", f"{wall:.1f} vs {peer['wall_s']:.1f} s = {wall / peer['wall_s']:.2f}x",
               wall <= peer["wall_s"])
    return ok


def _server_rate(stamps: dict[str, Any]) -> float:
    """Requests per second between the first and the last request the server received."""
    received = sorted(stamps["received_ns"])
    return (len(received) - 1) / ((received[-1] - received[0]) / 1e9) if len(received) > 1 else 0.0


def l4(args: argparse.Namespace, work: Path) -> bool:
    print("L4 rate: Poisson arrivals at 50 requests/s")
    requests = args.requests or 2000
    with launch(delay_ms=0) as server:
        suite = write_suite(work / "l4.json", requests)
        server.stamps(reset=True)
        batch, _, _ = run_plugin(suite, server.url, work / "l4", "--llmbench-request-rate", "50",
                                 "--llmbench-concurrency", "64", "--llmbench-test-files", "none")
        received = sorted(server.stamps()["received_ns"])
    gaps = [(b - a) / 1e9 for a, b in pairwise(received)]
    achieved = len(gaps) / ((received[-1] - received[0]) / 1e9)
    cv = statistics.stdev(gaps) / statistics.fmean(gaps)
    lag = batch["load"]["schedule_lag_ms"]["p50"]
    planned = list(islice(arrivals(50.0, 1.0, 0.0, random.Random(0)), len(received)))  # --llmbench-seed 0
    line("the schedule's own rate (seed 0; 2,000 Poisson gaps vary by 2.2 %)",
         f"{(len(planned) - 1) / planned[-1]:.2f} req/s", None)
    ok = line("achieved arrival rate at the server", f"{achieved:.2f} req/s = {achieved / 50:.3f} of 50",
              abs(achieved / 50 - 1) <= 0.02)
    ok &= line("coefficient of variation of the gaps", f"{cv:.3f} (Poisson: 1.0)", abs(cv - 1) <= 0.05)
    ok &= line("median schedule_lag", f"{lag:.3f} ms", lag < 2)
    return ok


def l5(args: argparse.Namespace, work: Path) -> bool:
    print("L5 overhead: sequential tests against bare pytest (benchmarks/plugin_overhead.py, which times both modes)")
    command = [sys.executable, str(HERE / "plugin_overhead.py"), "--tests", str(args.requests or 2000),
               "--repeats", str(args.repeats)]
    print("overhead:", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    print(done.stdout[-2500:] + done.stderr[-2500:])
    # L5 judges the --llmbench-test-files none ratio; the default case's (its own 1.15 target) is printed too
    judged = [row for row in done.stdout.splitlines() if row.startswith("ratio plugin --llmbench-test-files none")]
    return bool(judged) and judged[-1].endswith("PASS")


def l6(args: argparse.Namespace, work: Path) -> bool:
    print("L6 a real sweep: concurrency 1, 2, 4 against the embedded model")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        line("embedded model", "llama-cpp-python not installed: not run", None)
        return True
    suite = Path(__file__).resolve().parent.parent / "example_suites"
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite / "quickstart.json"), "--llmbench-sweep",
               "concurrency=1,2,4", "-p", "no:cacheprovider", "-q"]
    print("plugin:", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    knee_line = next((text for text in done.stdout.splitlines() if text.startswith("knee:")), "knee: (none printed)")
    ok = line("sweep wall time", f"{wall:.0f} s (target < 300)", wall < 300)
    ok &= line("the summary names the knee", knee_line, knee_line.startswith("knee:") and "printed" not in knee_line)
    return ok


TARGETS = {"L1": l1, "L2": l2, "L3": l3, "L4": l4, "L5": l5, "L6": l6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", choices=[*TARGETS, "all"])
    parser.add_argument("--requests", type=int, default=0, help="requests per run (default: the target's)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command in L5 (default 5)")
    parser.add_argument("--plugin-args", nargs="*", default=[], help="extra options for the plugin runs (L3)")
    return run_targets(TARGETS, parser.parse_args(), "llmbench-load-")


def run_targets(targets: dict[str, Any], args: argparse.Namespace, prefix: str) -> int:
    """Each named target (or all) in a folder of its own; the summary line; exit status 1 if any failed."""
    print("command:", " ".join([sys.executable, *sys.argv]))
    names = list(targets) if "all" in args.targets else args.targets
    results = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        for name in names:
            (Path(folder) / name).mkdir()
            results[name] = targets[name](args, Path(folder) / name)
    print("summary: " + ", ".join(f"{name} {verdict(ok)}" for name, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
