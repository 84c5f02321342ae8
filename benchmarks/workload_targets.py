"""The workload targets W1-W5 of issue 21, each printing its figures (median and worst of --runs), the ratio to
its target and PASS/FAIL (or "not judged" when a run cannot judge it), with the core count and load average.

    python benchmarks/workload_targets.py W1            # or W2 ... W5, or all
    python benchmarks/workload_targets.py all --runs 1 --small   # tiny counts: proves the scripts work

W1 exactness: synthetic inputs of 128, 1,024 and 4,096 tokens are exact (0 tokens off) on a server with /tokenize
   (benchmarks/openai_server.py --tokenizer: one token per 4 characters), and outputs exact with exact_output on a
   server that honours ignore_eos; with --embedded also within 1 % by the embedded llama.cpp server's usage.
W2 generation cost: 100,000 synthetic prompts of 1,024 tokens: collection (pytest --collect-only) <= 15 s and
   <= 400 MB RSS; building all 100,000 texts (estimate tokenizer, one process) timed beside it, and the build rate
   against a /tokenize server for 1,000 of them. vLLM's Rust bench advertises seconds for 100k x 8,192 tokens.
W3 a 1 GB ShareGPT-format file sampled to 1,000 conversations with RSS < 300 MB.
W4 trace replay at 50 req/s (2,000 Mooncake lines, Poisson gaps): send-time error against the trace, judged on the
   server's own receive stamps, p99 <= 2 ms.
W5 beside AIPerf on the same synthetic workload (ISL 512, OSL 64, concurrency 16, same server): total input and
   output tokens by server usage within 1 % of AIPerf's, request rate >= AIPerf's. AIPerf is used when installed
   (see load_targets.py and ../shared/notes/peer-aiperf.md); without it the plugin's side is printed alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from load_targets import AIPERF, aiperf_value, line, run_aiperf, run_plugin
from openai_server import launch, verdict

MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "print(done.stdout[-3000:] + done.stderr[-2000:]); "
           "print('MEASURED', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
           "done.returncode)")


def measured(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, output) of one command, in a fresh process so the peak is its own."""
    print("run:", " ".join(command), flush=True)
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=cwd, capture_output=True, text=True,
                          check=True)
    *output, last = done.stdout.rstrip().splitlines()
    _, wall, rss_kb, code = last.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(command)} exited {code}:\n" + "\n".join(output))
    return float(wall), int(rss_kb) / 1024, "\n".join(output)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3g}, worst {max(values):.3g} of {len(values)}"


def synthetic_suite(path: Path, count: int, input_tokens: int, output_tokens: int, **extra: Any) -> Path:
    path.write_text(json.dumps({"test_suite_id": path.stem, "workload": {
        "type": "synthetic", "count": count, "seed": 7, "input_tokens": input_tokens,
        "output_tokens": output_tokens, "exact_output": True, **extra}}))
    return path


def w1(args: argparse.Namespace, work: Path) -> bool | None:
    count = 10 if args.small else 50
    print(f"W1 exactness: {count} synthetic requests per length, server /tokenize, exact_output")
    ok = True
    with launch(tokenizer=True) as server:
        for length in (128, 1024, 4096):
            offs: list[float] = []
            outputs_exact: list[float] = []
            for run in range(args.runs):
                suite = synthetic_suite(work / f"w1-{length}.json", count, length, 32)
                batch, _, _ = run_plugin(suite, server.url, work / f"w1-{length}-{run}", "--llmbench-concurrency",
                                         "8", "--llmbench-test-files", "none")
                rows = [row for row in batch["tests"] if row["success"]]
                offs.append(max(abs(row["prompt_tokens"] - length) for row in rows) if rows else float("inf"))
                outputs_exact.append(sum(row["completion_tokens"] == 32 for row in rows) / count)
            ok &= line(f"{length} tokens: most tokens off (server usage)", spread(offs), max(offs) == 0)
            ok &= line(f"{length} tokens: share of outputs exactly 32", spread(outputs_exact),
                       min(outputs_exact) == 1.0)
    if not args.embedded:
        line("embedded llama.cpp within 1 %", "not run (give --embedded)", None)
        return ok
    for length in (128, 1024):
        suite = synthetic_suite(work / f"w1-embedded-{length}.json", 3, length, 8)
        command = [sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "-p", "no:cacheprovider", "-q"]
        subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
        [batch_file] = (work / "llmbench_results" / "latest").glob("batch_results_*.json")
        section = json.loads(batch_file.read_text())["workload"] or {}
        worst = section.get("input_off_max_pct")
        ok &= line(f"embedded {length} tokens: worst input off", f"{worst} % (target <= 1)",
                   worst is not None and worst <= 1)
    return ok


BUILD = """
import resource, sys, time
from pytest_llmbench.collect.workload.prompts import PromptBuilder
from pytest_llmbench.collect.workload.tokens import EstimateTokenizer
count, length = int(sys.argv[1]), int(sys.argv[2])
builder = PromptBuilder(EstimateTokenizer())
started = time.perf_counter()
total = sum(len(builder.text(length, f"synthetic/7/{n}")[0]) for n in range(count))
print("BUILT", time.perf_counter() - started, total)
"""

SERVER_BUILD = """
import sys, time
from pytest_llmbench.collect.workload.prompts import PromptBuilder
from pytest_llmbench.http.client import ClientConfig, LLMClient
from pytest_llmbench.http.tokenize import find_server_tokenizer
count, length, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tokenizer, _ = find_server_tokenizer(LLMClient(ClientConfig(url), model="bench-model"), "bench-model")
builder = PromptBuilder(tokenizer)
builder.corpus
started = time.perf_counter()
for n in range(count):
    builder.text(length, f"synthetic/7/{n}")
print("BUILT", time.perf_counter() - started, count)
"""


def w2(args: argparse.Namespace, work: Path) -> bool | None:
    count = 5_000 if args.small else 100_000
    print(f"W2 generation cost: {count:,} synthetic prompts of 1,024 tokens")
    suite = synthetic_suite(work / "w2.json", count, 1024, 16)
    walls, peaks, builds, server_rates = [], [], [], []
    with launch(tokenizer=True) as server:
        for _ in range(args.runs):
            wall, rss, output = measured([sys.executable, "-m", "pytest", "--collect-only", "-q", "--llmbench-suite",
                                          str(suite), "--llmbench-endpoint", server.url, "-p", "no:cacheprovider"],
                                         work)
            assert f"{count} tests collected" in output, output[-500:]
            walls.append(wall)
            peaks.append(rss)
            _, _, built = measured([sys.executable, "-c", BUILD, str(count), "1024"], work)
            builds.append(float(next(x for x in built.splitlines() if x.startswith("BUILT")).split()[1]))
            sample = 100 if args.small else 1000
            _, _, built = measured([sys.executable, "-c", SERVER_BUILD, str(sample), "1024", server.url], work)
            server_rates.append(sample / float(next(x for x in built.splitlines() if x.startswith("BUILT")).split()[1]))
    judged = not args.small  # a small run only shows the script works: start-up dominates its time
    ok = line(f"collection wall s, {count:,} tests", f"{spread(walls)} (target <= 15 at 100,000)",
              max(walls) <= 15 if judged else None)
    ok &= line("collection peak RSS MB", f"{spread(peaks)} (target <= 400 at 100,000)",
               max(peaks) <= 400 if judged else None)
    line(f"building every text, estimate tokenizer, s, {count:,} prompts", spread(builds), None)
    line("building with the server's /tokenize, prompts/s", spread(server_rates), None)
    return ok if judged else None


def sharegpt_file(path: Path, megabytes: int) -> int:
    """A ShareGPT-format JSONL of about ``megabytes`` MB; returns its conversations."""
    rng = random.Random(1)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards",
             "quietly", "hex", "every", "jovial", "beast"]
    target, written, count = megabytes * 2**20, 0, 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            chunk = []
            for _ in range(1000):
                question = " ".join(rng.choices(words, k=rng.randint(20, 200)))
                answer = " ".join(rng.choices(words, k=rng.randint(50, 400)))
                chunk.append(json.dumps({"id": f"c{count}", "conversations": [
                    {"from": "human", "value": question}, {"from": "gpt", "value": answer}]}))
                count += 1
            text = "\n".join(chunk) + "\n"
            handle.write(text)
            written += len(text)
    return count


def w3(args: argparse.Namespace, work: Path) -> bool | None:
    megabytes = 20 if args.small else 1024
    data = work / "sharegpt.jsonl"
    total = sharegpt_file(data, megabytes)
    print(f"W3 a {data.stat().st_size / 2**20:,.0f} MB ShareGPT file ({total:,} conversations) sampled to 1,000")
    suite = work / "w3.json"
    suite.write_text(json.dumps({"workload": {"type": "dataset", "path": str(data), "format": "sharegpt",
                                              "count": 1000, "seed": 1}}))
    load = (f"from pytest_llmbench.collect.suite import load_suite; "
            f"print('CASES', len(load_suite({str(suite)!r}).tests))")
    walls, peaks = [], []
    for _ in range(args.runs):
        wall, rss, output = measured([sys.executable, "-c", load], work)
        assert "CASES 1000" in output, output[-500:]
        walls.append(wall)
        peaks.append(rss)
    line("sampling wall s", spread(walls), None)
    judged = not args.small  # the target is for a 1 GB file
    ok = line("peak RSS MB", f"{spread(peaks)} (target < 300 at 1 GB)", max(peaks) < 300 if judged else None)
    return ok if judged else None


def w4(args: argparse.Namespace, work: Path) -> bool | None:
    requests = 200 if args.small else 2000
    print(f"W4 trace replay: {requests} Mooncake lines at 50 req/s (Poisson gaps)")
    rng, stamp, planned = random.Random(4), 0.0, []
    for _ in range(requests):
        planned.append(stamp)
        stamp += rng.expovariate(50.0) * 1000
    (work / "trace.jsonl").write_text("".join(json.dumps({"timestamp": round(t, 3), "input_length": 64,
                                                          "output_length": 8}) + "\n" for t in planned))
    suite = work / "w4.json"
    suite.write_text(json.dumps({"workload": {"type": "trace", "path": "trace.jsonl"}}))
    p99s, p50s = [], []
    with launch(tokenizer=True) as server:
        for run in range(args.runs):
            server.stamps(reset=True)
            batch, _, _ = run_plugin(suite, server.url, work / f"w4-{run}", "--llmbench-test-files", "none")
            received = sorted(server.stamps()["received_ns"])
            errors = sorted(abs((got - received[0]) / 1e6 - (want - planned[0]))
                            for got, want in zip(received, planned))
            p50s.append(errors[len(errors) // 2])
            p99s.append(errors[min(len(errors) - 1, int(len(errors) * 0.99))])
            print(f"  run {run + 1}: {len(received)} received, schedule lag p50 "
                  f"{batch['load']['schedule_lag_ms'].get('p50'):.3f} ms")
    line("send-time error p50 ms (server stamps)", spread(p50s), None)
    return line("send-time error p99 ms (server stamps)", f"{spread(p99s)} (target <= 2)", max(p99s) <= 2)


def w5(args: argparse.Namespace, work: Path) -> bool | None:
    requests = 100 if args.small else 1000
    print(f"W5 beside AIPerf: {requests} requests, ISL 512, OSL 64, concurrency 16")
    suite = synthetic_suite(work / "w5.json", requests, 512, 64)
    ok, judged = True, False
    with launch(tokenizer=True) as server:
        for run in range(args.runs):
            batch, wall, _ = run_plugin(suite, server.url, work / f"w5-{run}", "--llmbench-concurrency", "16",
                                        "--llmbench-test-files", "none")
            ours = batch["aggregate"]
            inputs = sum(row["prompt_tokens"] or 0 for row in batch["tests"])
            print(f"  plugin: {inputs} input tokens, {ours['total_completion_tokens']} output tokens, "
                  f"{ours['request_throughput']:.1f} req/s over the requests' span, {wall:.1f} s end to end")
            if not AIPERF.exists():
                line("AIPerf", f"not installed at {AIPERF}: W5 not judged", None)
                continue
            peer = run_aiperf(server.url, requests, 16, work / f"w5-aiperf-{run}", dataset=(
                "--synthetic-input-tokens-mean", "512", "--synthetic-input-tokens-stddev", "0",
                "--output-tokens-mean", "64", "--output-tokens-stddev", "0", "--extra-inputs", "ignore_eos:true",
                "--extra-inputs", "min_tokens:64"))
            judged = True
            if peer is None:
                ok = line("AIPerf", "failed (see above)", False)
                continue
            peer_in = (aiperf_value(peer, "input_sequence_length") or 0) * requests
            peer_out = (aiperf_value(peer, "output_sequence_length") or 0) * requests
            peer_rate = aiperf_value(peer, "request_throughput") or 0.0
            ok &= line("input tokens vs AIPerf", f"{inputs} / {peer_in:.0f}", abs(inputs - peer_in) <= 0.01 * peer_in)
            ok &= line("output tokens vs AIPerf", f"{ours['total_completion_tokens']} / {peer_out:.0f}",
                       abs(ours["total_completion_tokens"] - peer_out) <= 0.01 * peer_out)
            ok &= line("request rate vs AIPerf", f"{ours['request_throughput']:.1f} / {peer_rate:.1f} req/s",
                       ours["request_throughput"] >= peer_rate)
    return ok if judged else None


TARGETS: dict[str, Callable[[argparse.Namespace, Path], bool | None]] = {
    "W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", choices=[*TARGETS, "all"])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (median and worst)")
    parser.add_argument("--small", action="store_true", help="tiny counts, to check that the scripts work")
    parser.add_argument("--embedded", action="store_true", help="W1 also against the embedded llama.cpp model")
    args = parser.parse_args()
    print("command:", " ".join([sys.executable, *sys.argv]))
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="llmbench-workload-") as folder:
        for name in list(TARGETS) if "all" in args.targets else args.targets:
            (Path(folder) / name).mkdir()
            started = time.perf_counter()
            results[name] = TARGETS[name](args, Path(folder) / name)
            print(f"  ({name} took {time.perf_counter() - started:.0f} s)")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    # a target that judged nothing (a --small run of W2/W3, W5 without AIPerf) is "not judged", never PASS
    print("summary: " + ", ".join(f"{name} {'not judged' if ok is None else verdict(ok)}"
                                  for name, ok in results.items()))
    return 0 if all(ok is not False for ok in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
