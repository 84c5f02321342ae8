"""A2: validating structured outputs against a JSON Schema adds at most 0.1 ms per test (10,000 answers of 2 KB).

    python benchmarks/schema_validation.py [--answers 10000 --bytes 2048 --tests 100 --repeats 5]

What a test pays for the check, measured in this process, not as a pytest session's wall time: the ``json_schema``
check as a test runs it (``evaluate`` with only that key: finding the JSON in the answer, parsing it, validating it
under draft 2020-12 with format checks), and the same for a tool call's arguments (``tool_calls``: names, JSON, the
tool's own schema, the given values). The answers are seeded valid JSON objects of about ``--bytes`` each (a list of
records), spread over ``--tests`` tests each with its own copy of the schema, as a suite's tests have; one answer is
one test. Then the same number of invalid answers, which ``jsonschema`` (the reference) judges and describes whether
or not the ``fastschema`` extra is installed: their cost is printed beside, not in the target.

Judged on the thread's CPU time per answer (``time.thread_time``): the cost the check adds to a test, which other
processes on a shared machine cannot inflate. Wall time per answer is printed beside; on a quiet machine the two
agree, and where wall is well above CPU the line says the machine was busy. Prints, per check, the median and worst
of the repeats and the worst's ratio to the 0.1 ms target, whether jsonschema-rs was used, the core count and the
load average before and after. The process's first answer (which compiles the schema's validator, cached for every
later answer of that schema) is timed apart and printed, not pooled: a suite pays it once, not per test.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import random
import statistics
import sys
import time
from typing import Any

from pytest_llmbench.checks.evaluate import evaluate

TARGET_MS = 0.1
SCHEMA = {"type": "object", "required": ["title", "date", "items"], "additionalProperties": False,
          "properties": {"title": {"type": "string", "minLength": 1}, "date": {"type": "string", "format": "date"},
                         "items": {"type": "array", "items": {
                             "type": "object", "required": ["name", "count", "tags"],
                             "properties": {"name": {"type": "string"}, "count": {"type": "integer", "minimum": 0},
                                            "tags": {"type": "array", "items": {"type": "string"}}}}}}}
TOOLS = [{"type": "function", "function": {"name": "record", "parameters": SCHEMA}}]


def answer(rng: random.Random, size: int, valid: bool) -> str:
    data: dict[str, Any] = {"title": "inventory", "date": "2025-03-14", "items": []}
    while len(json.dumps(data)) < size:
        data["items"].append({"name": f"item{rng.randrange(10**6)}", "count": rng.randrange(100),
                              "tags": [rng.choice(["red", "green", "blue", "large", "small"]) for _ in range(3)]})
    if not valid:
        data["items"][-1]["count"] = "many"
    return json.dumps(data)


def once(answers: list[str], tool: bool, tests: int) -> tuple[float, float, int]:
    """(wall ms per answer, this thread's CPU ms per answer, answers that failed)."""
    one = {"tool_calls": [{"name": "record", "arguments": {"title": "inventory"}}]} if tool else {"json_schema": SCHEMA}
    expected = [copy.deepcopy(one) for _ in range(tests)]
    offered = [copy.deepcopy(TOOLS) for _ in range(tests)]
    failed = 0
    start, cpu = time.perf_counter(), time.thread_time()
    for n, text in enumerate(answers):
        called = [{"id": "c", "name": "record", "arguments": text}] if tool else None
        failed += not evaluate(expected[n % tests], "" if tool else text, None, called=called,
                               tools=offered[n % tests]).passed
    wall, used = time.perf_counter() - start, time.thread_time() - cpu
    return wall * 1000 / len(answers), used * 1000 / len(answers), failed


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--bytes", type=int, default=2048)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {load()}")
    fast = importlib.util.find_spec("jsonschema_rs") is not None
    print(f"jsonschema-rs (the fastschema extra): {'installed' if fast else 'not installed'}")
    rng = random.Random(args.seed)
    valid = [answer(rng, args.bytes, valid=True) for _ in range(args.answers)]
    invalid = [answer(rng, args.bytes, valid=False) for _ in range(args.answers)]
    ok = True
    for name, tool in (("json_schema", False), ("tool_calls", True)):
        cold = once(valid[:1], tool, 1)  # the process's first: the schema's validator is compiled, then cached
        runs = [once(valid, tool, args.tests) for _ in range(args.repeats)]
        walls, cpus = [wall for wall, _, _ in runs], [used for _, used, _ in runs]
        refused = once(invalid, tool, args.tests)
        assert all(failed == 0 for _, _, failed in runs) and refused[2] == args.answers, "verdicts are wrong"
        median, worst = statistics.median(cpus), max(cpus)
        ok = ok and worst <= TARGET_MS
        busy = statistics.median(walls) > 1.5 * median
        print(f"A2 {name}: {args.answers} valid answers of {args.bytes} B over {args.tests} tests, {args.repeats} "
              f"runs: CPU median {median:.4f} ms, worst {worst:.4f} ms per test; worst / target "
              f"{worst / TARGET_MS:.2f} (target {TARGET_MS:g} ms) -> {'PASS' if worst <= TARGET_MS else 'FAIL'}")
        print(f"   wall median {statistics.median(walls):.4f} ms, worst {max(walls):.4f} ms per test"
              f"{' (well above CPU: the machine was busy, other processes ran meanwhile)' if busy else ''}; "
              f"an invalid answer: {refused[1]:.3f} ms CPU (described by jsonschema); the process's first answer "
              f"{cold[1]:.3f} ms CPU (first use: imports, the validator compiled; once per schema and process, "
              "not pooled)")
    print(f"load average after: {load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
