"""Multi-turn conversations: one item per conversation, each turn sent with every earlier answer, recorded as its
own row and result with ``turn``, pooled in the statistics; think time; per-turn checks and SLOs; ShareGPT replays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from run_files import batch_of, results_by_id

from pytest_llmbench.collect.suite import load_suite
from pytest_llmbench.exceptions import SuiteError


@pytest.fixture
def stub(load_stub: OpenAIStub) -> OpenAIStub:
    load_stub.delay = 0.05
    return load_stub


def chats(stub: OpenAIStub) -> list[dict[str, Any]]:
    return [r for r in stub.requests if r["path"] == "/v1/chat/completions"]


def run(pytester: pytest.Pytester, stub: OpenAIStub, suite: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--llmbench-endpoint", stub.url,
                                         "--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args)


def conversation(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"conv{n}", "messages": [{"role": "system", "content": f"system {n}"}],
            "turns": [f"c{n} first", f"c{n} second", f"c{n} third"], **fields}


def test_each_turn_carries_the_earlier_answers_and_is_its_own_row(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.answers = {"first": "answer one", "second": "answer two"}
    suite = write_suite(pytester.path / "chat.json", [conversation(0, think_time_s=0.3)])
    result = run(pytester, stub, suite)
    result.assert_outcomes(passed=1)
    sent = chats(stub)
    assert [[m["content"] for m in r["body"]["messages"]] for r in sent] == [
        ["system 0", "c0 first"],
        ["system 0", "c0 first", "answer one", "c0 second"],
        ["system 0", "c0 first", "answer one", "c0 second", "answer two", "c0 third"]]
    assert sent[1]["at"] - sent[0]["at"] >= 0.3 and sent[2]["at"] - sent[1]["at"] >= 0.3  # the server's stamps
    data = batch_of(pytester.path / "llmbench_results" / "latest")
    assert [(row["test_id"], row["turn"]) for row in data["tests"]] == [("conv0", 1), ("conv0", 2), ("conv0", 3)]
    aggregate = data["aggregate"]
    assert aggregate["total_tests"] == 1 and aggregate["total_requests"] == 3 and aggregate["count_latency"] == 3
    files = sorted(p.name for p in (pytester.path / "llmbench_results" / "latest").glob("*_result.json"))
    assert len(files) == 3 and all("turn" in name for name in files)


def test_a_turns_own_expectation_fails_the_conversation_naming_the_turn(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.answers = {"second": "wrong answer"}
    suite = write_suite(pytester.path / "chat.json", [{
        "id": "conv", "turns": ["first", {"content": "second", "expected": {"contains": ["right"]}}, "third"]}])
    result = run(pytester, stub, suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*turn 2: *right*"])
    rows = batch_of(pytester.path / "llmbench_results" / "latest")["tests"]
    assert [row["evaluation_passed"] for row in rows] == [None, False, None]


def test_a_turns_own_slo_applies_to_that_turn_only(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    # every answer waits the stub's 50 ms: turn 2's 10 ms limit cannot hold, the test's 60 s one always does
    suite = write_suite(pytester.path / "chat.json", [{
        "id": "conv", "slo": {"max_latency_s": 60},
        "turns": ["first", {"content": "second", "slo": {"max_latency_s": 0.01}}, "third"]}])
    result = run(pytester, stub, suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*turn 2: *max_latency_s*"])
    rows = batch_of(pytester.path / "llmbench_results" / "latest")["tests"]
    assert [row["slo_passed"] for row in rows] == [True, False, True]


def test_a_failed_turn_ends_the_conversation(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.status = {"second": 500}
    suite = write_suite(pytester.path / "chat.json", [{"id": "conv", "turns": ["first", "second", "third"]}])
    run(pytester, stub, suite, "--llmbench-retries", "0").assert_outcomes(failed=1)
    assert len(chats(stub)) == 2  # the third turn has no answer before it to follow


def test_conversations_under_load_keep_their_turns_in_order(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "chat.json", [conversation(n) for n in range(4)])
    run(pytester, stub, suite, "-n", "2", "--llmbench-concurrency", "4").assert_outcomes(passed=4)
    sent = chats(stub)
    assert len(sent) == 12 and stub.peak >= 2  # conversations overlap
    for n in range(4):
        mine = [r["body"]["messages"][-1]["content"] for r in sent if r["body"]["messages"][0]["content"] == f"system {n}"]
        assert mine == [f"c{n} first", f"c{n} second", f"c{n} third"]
    results = results_by_id(pytester.path / "llmbench_results" / "latest")
    assert len(results) == 4  # by test id: one file set per turn, the last turn's wins the map
    rows = batch_of(pytester.path / "llmbench_results" / "latest")["tests"]
    assert sorted((row["test_id"], row["turn"]) for row in rows) == [(f"conv{n}", t) for n in range(4) for t in (1, 2, 3)]


def test_sharegpt_conversations_replay_their_human_turns(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    data = pytester.path / "sharegpt.jsonl"
    data.write_text("\n".join(json.dumps({"conversations": [
        {"from": "system", "value": "be brief"}, {"from": "human", "value": f"q{n}a"},
        {"from": "gpt", "value": "recorded"}, {"from": "human", "value": f"q{n}b"}]}) for n in range(3)))
    suite = pytester.path / "chats.json"
    suite.write_text(json.dumps({"workload": {"type": "dataset", "path": "sharegpt.jsonl", "multi_turn": True}}))
    run(pytester, stub, suite).assert_outcomes(passed=3)
    sent = chats(stub)
    assert [[m["content"] for m in r["body"]["messages"]] for r in sent[:2]] == [
        ["be brief", "q0a"], ["be brief", "q0a", "stub answer", "q0b"]]
    assert len(sent) == 6


@pytest.mark.parametrize(("test", "message"), [
    ({"id": "c", "turns": []}, "turns must be a non-empty list of user turns"),
    ({"id": "c", "turns": ["a"], "prompt": "p"}, "has both 'prompt' and 'turns'"),
    ({"id": "c", "turns": ["a", {"content": "b", "expect": {}}]}, "unknown field 'turns[1].expect'"),
    ({"id": "c", "turns": ["a"], "think_time_s": -1}, "think_time_s must be a number of seconds >= 0"),
])
def test_bad_turns_are_named(tmp_path: Path, test: Any, message: str) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path / "s.json", [{"name": "n", "category": "c", **test}], complete=False))
    assert f"s.json: tests[0] (id 'c'): {message}" in str(info.value)
