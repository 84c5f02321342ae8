"""R2: answer drift over 10,000 answers of 2 KB in at most 2 s, without embeddings.

    python benchmarks/drift_speed.py [--answers 10000 --bytes 2048 --repeats 5]

Times what a compared run adds for its answers: ``BaselineAnswers.compare`` on each (levels, similarity, and the
word-level diff of every changed answer while the most changed are kept), then the batch's ``answer_changes`` and
``drift``. The answers are seeded text: 60 % identical, 10 % changed only in case and punctuation, 20 % with a few
words replaced, 10 % rewritten. Prints the median and worst of the repeats and their ratio to the 2 s target, with
the core count and load average (the machine is shared: judge on a quiet one).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

from pytest_llmbench.metrics.drift import BaselineAnswers

WORDS = ["the", "model", "answer", "token", "server", "latency", "quick", "brown", "fox", "jumps", "over", "lazy",
         "dog", "paris", "rome", "capital", "seven", "eleven", "number", "list", "first", "second", "third",
         "because", "therefore", "however", "result", "value"]
TARGET_S = 2.0


def text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def answers(count: int, size: int, seed: int) -> tuple[dict[tuple[str, str], str], list[tuple[dict, str]]]:
    rng = random.Random(seed)
    before, after = {}, []
    for n in range(count):
        old = text(rng, size)
        kind = rng.random()
        if kind < 0.6:
            new = old
        elif kind < 0.7:
            new = old.upper().replace(" the ", " the, ")
        elif kind < 0.9:
            words = old.split(" ")
            for _ in range(5):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            new = " ".join(words)
        else:
            new = text(rng, size)
        before[(f"t{n}", "m")] = old
        after.append(({"test_id": f"t{n}", "model": "m", "evaluation_passed": True}, new))
    return before, after


def once(before: dict[tuple[str, str], str], after: list[tuple[dict, str]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a busy machine the CPU time says what a quiet one would."""
    baseline = BaselineAnswers(before, {key: {"evaluation_passed": True} for key in before})
    rows = []
    start, cpu = time.perf_counter(), time.process_time()
    for row, answer in after:
        rows.append({**row, "answer_drift": baseline.compare(row, answer, {"temperature": 0, "seed": 1})})
    baseline.changes(rows)
    baseline.summary(rows, 0.8)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--bytes", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    before, after = answers(args.answers, args.bytes, args.seed)
    runs = [once(before, after) for _ in range(args.repeats)]
    times, cpu = [wall for wall, _ in runs], [used for _, used in runs]
    median, worst = statistics.median(times), max(times)
    ok = worst <= TARGET_S
    print(f"R2: {args.answers} answers of {args.bytes} B: median {median:.3f} s, worst {worst:.3f} s over "
          f"{args.repeats} runs (CPU median {statistics.median(cpu):.3f} s, worst {max(cpu):.3f} s); worst / target "
          f"{worst / TARGET_S:.2f} (target {TARGET_S:g} s) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
