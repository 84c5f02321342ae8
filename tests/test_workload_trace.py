"""Trace replay: Mooncake lines sent at their timestamps (over speedup) with no load option, judged on the server's
own arrival stamps; shared hash-id blocks; schedule lag and offered rate; bad traces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub
from pytest_httpserver import HTTPServer
from run_files import batch_of, results_by_id

GAP_MS = 100


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    answering = OpenAIStub(tokenizer=True, delay=0.3)
    answering.url = answering.install(server)
    yield answering
    server.clear()
    server.stop()


def write_trace(folder: Path, lines: list[Any], **workload: Any) -> Path:
    (folder / "mooncake.jsonl").write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    suite = folder / "replay.json"
    suite.write_text(json.dumps({"test_suite_id": "replay", "workload": {
        "type": "trace", "path": "mooncake.jsonl", "format": "mooncake", **workload}}))
    return suite


def run(pytester: pytest.Pytester, stub: OpenAIStub, suite: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--llmbench-endpoint", stub.url,
                                         "--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args)


def arrivals(stub: OpenAIStub) -> list[float]:
    return [r["at"] for r in stub.requests if r["path"] == "/v1/completions"]


def test_requests_leave_at_their_timestamps_without_any_load_option(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    lines = [{"timestamp": 5000 + n * GAP_MS * 2, "input_length": 20, "output_length": 4} for n in range(8)]
    run(pytester, stub, write_trace(pytester.path, lines, speedup=2.0)).assert_outcomes(passed=8)
    at = arrivals(stub)
    offsets = [t - at[0] for t in at]
    planned = [n * GAP_MS / 1000 for n in range(8)]  # 200 ms apart in the trace, over speedup 2
    assert all(got >= want - 0.02 for got, want in zip(offsets, planned))  # never ahead of the trace
    assert offsets[-1] < planned[-1] + 0.25  # nor waiting for answers (0.3 s each): they overlap
    assert stub.peak >= 2
    data = batch_of(pytester.path / "llmbench_results" / "latest")
    assert data["workload"]["trace"]["offered_rate"] == pytest.approx(1000 / GAP_MS)
    assert data["load"]["schedule_lag_ms"]["count"] == 8
    results = results_by_id(pytester.path / "llmbench_results" / "latest")
    assert sorted(r["send_at_s"] for r in results.values()) == pytest.approx(planned)


def test_shared_hash_ids_give_shared_prompt_blocks(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    lines = [{"timestamp": 0, "input_length": 40, "output_length": 2, "hash_ids": [1, 2, 3]},
             {"timestamp": 10, "input_length": 44, "output_length": 2, "hash_ids": [1, 2, 4]},
             {"timestamp": 20, "input_length": 30, "output_length": 2, "hash_ids": [5, 6]}]
    run(pytester, stub, write_trace(pytester.path, lines, block_tokens=16)).assert_outcomes(passed=3)
    # each prompt known by its length: 10 ms apart, a busy machine's threads may record two arrivals swapped
    prompts = {len(p): p for p in (stub.encode(r["body"]["prompt"]) for r in stub.requests
                                   if r["path"] == "/v1/completions")}
    assert sorted(prompts) == [30, 40, 44]
    assert prompts[40][:32] == prompts[44][:32] and prompts[40][32:40] != prompts[44][32:40]
    assert prompts[30][:16] != prompts[40][:16]


def test_a_trace_under_two_workers_is_sent_whole(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    lines = [{"timestamp": n * 20, "input_length": 10, "output_length": 2} for n in range(10)]
    run(pytester, stub, write_trace(pytester.path, lines), "-n", "2").assert_outcomes(passed=10)
    assert len(arrivals(stub)) == 10 and stub.peak >= 2


def test_malformed_lines_warn_and_backwards_time_is_one_message(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    good = {"timestamp": 0, "input_length": 10, "output_length": 2}
    result = run(pytester, stub, write_trace(pytester.path, [good, {"timestamp": 5}, "[1", {**good, "timestamp": 9}]))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*mooncake.jsonl:2: input_length must be a whole number above 0*skipped*",
                                 "*mooncake.jsonl:3: not JSON*skipped*"])
    stub.requests.clear()
    back = run(pytester, stub, write_trace(pytester.path, [{**good, "timestamp": 50}, good]))
    back.assert_outcomes(failed=1)
    back.stdout.fnmatch_lines(["*replay.json: workload.path: *mooncake.jsonl:2: timestamp 0 goes back before 50 "
                               "(line 1); a trace must be in time order"])
    assert "Traceback" not in back.stdout.str() and arrivals(stub) == []
