"""Dataset workloads end to end: OpenAI chat JSONL, ShareGPT (lines or one array) and {"text"} lines, sampled with
a seed, filtered by length, malformed lines warned about and listed in the batch, and a *.jsonl as a suite."""

from __future__ import annotations

import fnmatch
import json
import random
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub
from run_files import batch_of, results_by_id

from pytest_llmbench.collect.suite import load_suite
from pytest_llmbench.exceptions import SuiteError


@pytest.fixture
def stub(load_stub: OpenAIStub) -> OpenAIStub:
    load_stub.delay = 0.0
    return load_stub


def write_lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def sharegpt(n: int) -> dict[str, Any]:
    return {"id": f"c{n}", "conversations": [{"from": "human", "value": f"question {n}"},
                                             {"from": "gpt", "value": f"answer {n}"},
                                             {"from": "human", "value": f"follow-up {n}"}]}


def workload_suite(folder: Path, **workload: Any) -> Path:
    path = folder / "chats.json"
    path.write_text(json.dumps({"test_suite_id": "chats", "workload": {"type": "dataset", **workload}}))
    return path


def run(pytester: pytest.Pytester, stub: OpenAIStub, suite: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--llmbench-endpoint", stub.url,
                                         "--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args)


def test_sharegpt_is_sampled_with_its_seed_and_sent_as_chat(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    data = pytester.path / "data"
    data.mkdir()
    write_lines(data / "sharegpt.jsonl", [sharegpt(n) for n in range(50)])
    suite = workload_suite(pytester.path, path="data/sharegpt.jsonl", format="sharegpt", count=5, seed=1)
    run(pytester, stub, suite, "-n", "2").assert_outcomes(passed=5)
    bodies = [r["body"] for r in stub.requests if r["path"] == "/v1/chat/completions"]
    asked = sorted(b["messages"][-1]["content"] for b in bodies)
    assert len(set(asked)) == 5 and all(a.startswith("question ") for a in asked)  # the first human turn
    assert all(len(b["messages"]) == 1 for b in bodies)
    results = results_by_id(pytester.path / "llmbench_results" / "latest")
    assert sorted(results) == [f"sharegpt[{n:04d}]" for n in range(5)]
    # the same seed picks the same records in one process as across two workers
    suite_cases = load_suite(suite).tests
    assert sorted((c.messages or ())[-1]["content"] for c in suite_cases) == asked
    other = load_suite(workload_suite(pytester.path, path="data/sharegpt.jsonl", count=5, seed=2)).tests
    assert sorted((c.messages or ())[-1]["content"] for c in other) != asked


def test_sampling_is_uniform_over_the_file(tmp_path: Path) -> None:
    """Reservoir sampling: every record has the same chance (a biased sampler favours the file's head or tail)."""
    write_lines(tmp_path / "t.jsonl", [{"text": f"line {n}"} for n in range(100)])
    hits = [0] * 100
    for seed in range(300):
        for case in load_suite(workload_suite(tmp_path, path="t.jsonl", count=10, seed=seed, api="completions")).tests:
            hits[int(str(case.prompt).split()[1])] += 1
    halves = sum(hits[:50]), sum(hits[50:])
    assert min(hits) > 5 and abs(halves[0] - halves[1]) < 0.15 * 3000


def test_malformed_lines_warn_with_file_and_line_and_the_rest_run(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    write_lines(pytester.path / "mixed.jsonl", [
        {"messages": [{"role": "user", "content": "one"}]}, "{not json", {"messages": "nope"},
        {"text": "two"}, {"other": 1}, {"messages": [{"role": "system", "content": "s"},
                                                    {"role": "user", "content": "three"}]}])
    result = run(pytester, stub, pytester.path / "mixed.jsonl", "-n", "2")  # each worker warns; listed once
    result.assert_outcomes(passed=3)
    path = pytester.path / "mixed.jsonl"
    for line in (2, 3, 5):
        result.stdout.fnmatch_lines([f"*llmbench: {path}:{line}: *skipped*"])
    listed = batch_of(pytester.path / "llmbench_results" / "latest")["collection_warnings"]
    assert [w.split(": ", 2)[1] for w in listed] == [f"{path}:{n}" for n in (2, 3, 5)]
    contents = sorted(r["body"]["messages"][-1]["content"] for r in stub.requests if "completions" in r["path"])
    assert contents == ["one", "three", "two"]


def test_a_json_array_dump_streams_too_and_token_bounds_filter(pytester: pytest.Pytester, stub: OpenAIStub, tmp_path: Path) -> None:
    records = [sharegpt(n) for n in range(5)] + [{"conversations": [{"from": "human", "value": "x " * 4000}]}]
    (tmp_path / "dump.json").write_text(json.dumps(records, indent=1))
    suite = workload_suite(tmp_path, path=str(tmp_path / "dump.json"), format="sharegpt", max_input_tokens=100)
    cases = load_suite(suite).tests
    assert len(cases) == 5 and all(len((c.messages or ())[-1]["content"]) < 20 for c in cases)


def test_huge_lines_are_skipped_without_being_read_whole(tmp_path: Path) -> None:
    from pytest_llmbench.collect.workload import records as module

    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        handle.write(json.dumps({"text": "a"}) + "\n")
        handle.write('{"text": "' + "b" * (module.MAX_RECORD_BYTES + 10) + '"}\n')
        handle.write(json.dumps({"text": "c"}) + "\n")
    with path.open("rb") as handle:
        found = list(module.records(handle))
    assert [(r.where, r.value, r.problem is not None) for r in found] == [
        (1, {"text": "a"}, False), (2, None, True), (3, {"text": "c"}, False)]


@pytest.mark.parametrize(("workload", "message"), [
    ({"path": "missing.jsonl"}, "workload.path: no such file *missing.jsonl"),
    ({"path": "d.jsonl", "format": "csv"}, "workload.format must be one of auto, openai, sharegpt, text*"),
    ({"path": "d.jsonl", "max_input_tokens": -1}, "workload.max_input_tokens must be a whole number above 0*"),
    ({"path": "d.jsonl", "max_input_tokens": 1}, "workload.path: *d.jsonl has no usable record within the token*"),
])
def test_bad_dataset_workloads_are_one_clear_message(tmp_path: Path, workload: Any, message: str) -> None:
    write_lines(tmp_path / "d.jsonl", [{"text": "several words in this one"}])
    with pytest.raises(SuiteError) as info:
        load_suite(workload_suite(tmp_path, **workload))
    assert fnmatch.fnmatch(str(info.value), f"*chats.json: {message}*"), str(info.value)


def test_a_random_seeded_file_of_ten_thousand_lines_samples_the_same_in_any_process(tmp_path: Path) -> None:
    rng = random.Random(3)
    write_lines(tmp_path / "t.jsonl", [{"text": f"line {n} {rng.random()}"} for n in range(10_000)])
    first = [c.prompt for c in load_suite(workload_suite(tmp_path, path="t.jsonl", count=7, seed=9,
                                                         api="completions")).tests]
    again = [c.prompt for c in load_suite(workload_suite(tmp_path, path="t.jsonl", count=7, seed=9,
                                                         api="completions")).tests]
    assert first == again and len(set(first)) == 7


def test_a_file_saved_with_a_byte_order_mark_reads_from_its_first_line(tmp_path: Path) -> None:
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "first"}).encode() + b"\n")
    cases = load_suite(workload_suite(tmp_path, path="bom.jsonl", api="completions")).tests
    assert [case.prompt for case in cases] == ["first"]
