"""Issue 30's T1: the capacity search finds the true capacity within its tolerance, with fewer requests than
GuideLLM's goodput profile on the same server and objectives.

    python benchmarks/capacity_targets.py [--runs 20] [--guidellm /tmp/gvenv/bin/guidellm]

The server (``openai_server.py --delay-per-other-ms``) answers each request after ``--base-ms`` plus
``--per-other-ms`` for every other request in flight when it arrives, by its own count: with 50 + 10 ms, level c
answers in 40 + 10 c ms. The objective is ``--llmbench-slo latency_p95=<limit>`` (GuideLLM: ``e2el_ms`` with its
default target 0.95); the default limit, 255 ms, sits halfway between level 21 (250 ms) and 22 (260 ms), so the
true capacity is 21 whatever a millisecond of client overhead does. A run *hits* when the capacity it finds lies in
[true / (1 + tolerance), true]: the search's own promise (its bracket is within the tolerance and holds the truth).

Each of ``--runs`` seeded runs is a real pytest session (``--llmbench-search concurrency`` from ``--start``, 4 by
default as GuideLLM's goodput profile starts, the suite's 4 tests cycled, ``--llmbench-seed`` the run's number);
the requests each used are counted twice: the batch's own total and the server's count of what it received (minus
the suite's 4 tests, which run after the search). Target: 19 hits of 20, and the median requests below GuideLLM's,
which runs beside when installed (see ../shared/notes/peer-guidellm.md; its requests are the server's count too).
GuideLLM runs each probe over its whole data file and sizes no probe itself: ``--guidellm-requests`` prompts (300,
as the notes measured it) make a probe. Prints the core count and load average: judge on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from openai_server import MODEL, RunningServer, launch, plugin_command, verdict, write_suite

TESTS = 4  # the suite's tests: the search cycles them, and they run once after it
HITS_OF_20 = 19 / 20
DEFAULT_GUIDELLM = Path("/tmp/gvenv/bin/guidellm")
DEFAULT_TOKENIZER = Path("/tmp/aiperf-venv/tokdir")


def machine() -> str:
    return f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"


def true_capacity(base_ms: float, per_other_ms: float, limit_ms: float) -> int:
    """The highest concurrency whose every answer comes within the limit, by the server's rule."""
    return int((limit_ms - base_ms) // per_other_ms) + 1


def received(server: RunningServer) -> int:
    return len(server.stamps(reset=True)["received_ns"])


def plugin_run(server: RunningServer, suite: Path, folder: Path, seed: int, slo: str, args: argparse.Namespace) -> dict:
    out = folder / f"run{seed}"
    command = plugin_command(suite, server.url, "--llmbench-search", "concurrency", "--llmbench-slo", slo,
                             "--llmbench-search-tolerance", str(args.tolerance), "--llmbench-search-start",
                             str(args.start), "--llmbench-seed", str(seed),
                             "--llmbench-output", str(out), "--llmbench-test-files", "none", "--llmbench-html", "none")
    done = subprocess.run(command, cwd=folder, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    [batch] = (out / "latest").glob("batch_results_*.json")
    capacity: dict = json.loads(batch.read_text())["capacity"]
    return capacity


def guidellm_run(guidellm: Path, tokenizer: Path, server: RunningServer, folder: Path, limit_ms: float,
                 per_probe: int) -> str:
    """GuideLLM's goodput profile on the same server and objective; returns what it answered (its log line). Each
    of its probes runs over the whole data file (it does not cycle it): ``per_probe`` prompts, requests a probe."""
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"benchmark prompt {n}", "output_tokens_count": 16}) + "\n"
                               for n in range(per_probe)))
    out = folder / "guidellm.json"
    base = server.url.rsplit("/v1", 1)[0]
    command = [str(guidellm), "run", "--backend", f"kind=openai_http,target={base},model={MODEL}",
               "--tokenizer", f"kind=hf_auto,model={tokenizer}", "--data", f"kind=json_file,path={prompts}",
               "--profile", "kind=goodput", "--metrics",
               json.dumps({"kind": "generative", "slo": {"e2el_ms": limit_ms}}),
               "--output", f"kind=json,path={out}", "--disable-console-interactive"]
    print("guidellm:", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=folder, check=False, capture_output=True, text=True, timeout=1800)
    log = done.stdout + done.stderr
    (folder / "guidellm.log").write_text(log)
    answer = next((line.strip() for line in log.splitlines() if "goodput search" in line.lower()), "")
    if done.returncode != 0:
        return f"exited {done.returncode}: {log.strip().splitlines()[-1] if log.strip() else ''}"
    return answer or f"(no 'Goodput search' line in its log: {folder / 'guidellm.log'})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--base-ms", type=float, default=50.0)
    parser.add_argument("--per-other-ms", type=float, default=10.0)
    parser.add_argument("--limit-ms", type=float, default=255.0)
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--start", type=int, default=4, help="the first level: GuideLLM's goodput starts at 4 streams")
    parser.add_argument("--guidellm", type=Path, default=DEFAULT_GUIDELLM)
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER)
    parser.add_argument("--guidellm-runs", type=int, default=1, help="GuideLLM runs (each takes about 30 s)")
    parser.add_argument("--guidellm-requests", type=int, default=300,
                        help="GuideLLM's requests per probe: its data file's prompts (300, as the notes measured)")
    args = parser.parse_args()
    truth = true_capacity(args.base_ms, args.per_other_ms, args.limit_ms)
    floor = math.ceil(truth / (1 + args.tolerance))
    slo = f"latency_p95={args.limit_ms:g}ms"
    print(f"T1: capacity search, {args.runs} seeded runs ({machine()}); server {args.base_ms:g} ms + "
          f"{args.per_other_ms:g} ms per other request in flight, objective {slo}, start {args.start}, tolerance "
          f"{args.tolerance:g}: true capacity {truth}, a hit is {floor}..{truth}")
    hits, used = 0, []
    with tempfile.TemporaryDirectory(prefix="llmbench-t1-") as tmp, \
            launch(args.base_ms, per_other_ms=args.per_other_ms) as server:
        folder = Path(tmp)
        suite = write_suite(folder / "t1.json", TESTS)
        received(server)
        for seed in range(args.runs):
            found = plugin_run(server, suite, folder, seed, slo, args)
            counted = received(server) - TESTS
            hit = found["capacity"] is not None and floor <= found["capacity"] <= truth
            hits += hit
            used.append(counted)
            levels = ",".join(probe["label"] for probe in found["probes"])
            print(f"  run {seed}: capacity {found['capacity']} (below {found['upper']}), {found['stopped']}, "
                  f"probes {levels}; requests {found['requests']} by the batch, {counted} by the server "
                  f"{'hit' if hit else 'MISS'}", flush=True)
        print(f"hits {hits} of {args.runs} (target {HITS_OF_20:.0%}); requests per search median "
              f"{statistics.median(used):g}, worst {max(used)}")
        peer = None
        if shutil.which(str(args.guidellm)) or args.guidellm.exists():
            for _ in range(args.guidellm_runs):
                answer = guidellm_run(args.guidellm, args.tokenizer, server, folder, args.limit_ms,
                                      args.guidellm_requests)
                peer = received(server)
                print(f"GuideLLM goodput: {peer} requests by the server; {answer}")
        else:
            print(f"GuideLLM: not installed at {args.guidellm} (see ../shared/notes/peer-guidellm.md); the notes "
                  "measured 2,100 requests (7 probes x 300) for answer 20 on this kind of server: not judged here")
    good = hits >= HITS_OF_20 * args.runs and (peer is None or statistics.median(used) < peer)
    print(f"T1 {verdict(good)}{'' if peer is not None else ' (hits only: no GuideLLM run beside)'}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
