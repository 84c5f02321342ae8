"""R1: a 2,000-test run at 32 in flight killed with SIGKILL at a random moment, then resumed with
``--llmbench-resume``: every test recorded exactly once, and none sent twice except those the killed session had
sent without recording (in flight, or answered and not yet recorded: counted and printed), in every trial.

    python benchmarks/resume_kill.py [--tests 2000 --concurrency 32 --trials 20 --delay-ms 50 --seed 1]

The kill comes after a random number of the journal's result lines (5-95 % of the tests; the seed makes the
moments repeatable). The server (openai_server.py --keep-prompts) counts each prompt it receives; the judge is the
final batch file and those counts, never timing. Prints each trial, then PASS when all trials hold.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from openai_server import RunningServer, launch, verdict, write_suite

RESULT_LINE = b'{"kind": "result"'


def journal_results(output: Path) -> int:
    found = list(output.glob("*/results.jsonl"))
    lines = found[0].read_bytes().split(b"\n")[:-1] if found else []
    return sum(line.startswith(RESULT_LINE) for line in lines)


def command(suite: Path, url: str, concurrency: int, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--llmbench-suite", str(suite),
            "--llmbench-endpoint", url, "--llmbench-concurrency", str(concurrency), "--llmbench-output",
            str(output), "--llmbench-test-files", "none", "--llmbench-html", "none", *extra]


def kill_after(cmd: list[str], cwd: Path, output: Path, results: int) -> int:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    while journal_results(output) < results and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return journal_results(output)


def settled(server: RunningServer) -> list[str]:
    """The prompts received, once the killed session's requests on the wire have all arrived."""
    seen: list[str] = []
    while True:
        prompts = server.stamps()["prompts"]
        if len(prompts) == len(seen):
            return prompts
        seen = prompts
        time.sleep(0.5)


def trial(number: int, args: argparse.Namespace, server: RunningServer, suite: Path, work: Path,
          rng: random.Random) -> bool:
    server.stamps(reset=True)
    output = work / f"trial{number}"
    cmd = command(suite, server.url, args.concurrency, output)
    at = rng.randint(args.tests * 5 // 100, args.tests * 95 // 100)
    recorded = kill_after(cmd, work, output, at)
    first = Counter(settled(server))
    resumed = subprocess.run([*cmd, "--llmbench-resume"], cwd=work, capture_output=True, text=True, check=False)
    total = Counter(server.stamps()["prompts"])
    batch = json.loads(sorted(output.glob("*/batch_results_*.json"))[-1].read_text())  # the resumed session's
    ids = Counter(row["test_id"] for row in batch["tests"])
    kept = sum(bool(row.get("resumed")) for row in batch["tests"])
    again = {prompt for prompt, n in total.items() if n > 1}
    unrecorded = sum(first.values()) - kept
    ok = (resumed.returncode == 0 and not batch["partial"] and len(ids) == args.tests and set(ids.values()) == {1}
          and max(total.values()) <= 2 and len(total) == args.tests and len(again) == unrecorded
          and kept == recorded)
    print(f"trial {number + 1}: killed after {recorded} recorded (aimed at {at}); {sum(first.values())} sent before "
          f"the kill, {unrecorded} of them unrecorded and sent again; resumed session exit {resumed.returncode}; "
          f"batch {len(batch['tests'])} rows, {len(ids)} distinct, {kept} resumed -> {verdict(ok)}", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the server's wait before each answer")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="llmbench-r1-") as tmp, \
            launch(delay_ms=args.delay_ms, keep_prompts=True) as server:
        work = Path(tmp)
        suite = write_suite(work / "r1.json", args.tests)
        passed = sum(trial(n, args, server, suite, work, rng) for n in range(args.trials))
    ok = passed == args.trials
    print(f"R1: {passed}/{args.trials} trials held (target {args.trials}/{args.trials}) -> {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
