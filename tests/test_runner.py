"""Answer checks, the evaluate hook and the LLM judge, as they fail or pass items in whole sessions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

STUB = {"answers": {
    "RUBRIC-GOOD": '{"score": 8, "reason": "names the right city"}',
    "RUBRIC-BAD": 'Sure! ```json\n{"score": 2, "reason": "wrong city"}\n```',
    "France": "The capital of France is Lyon, a big city.",
    "sum": "We add them up, so the answer is 41.",
}}


@pytest.fixture
def httpserver_judge() -> Iterator[Any]:
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: Any) -> Any:
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *args)


def saved(pytester: pytest.Pytester, name: Any="Test_0") -> Any:
    loaded: Any = json.loads((pytester.path / "llmbench_results" / "latest" / f"{name}_result.json").read_text())
    return loaded


def test_failed_checks_fail_the_item_and_list_each_with_an_excerpt(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{
        "id": "geo", "prompt": "Capital of France?",
        "expected": {"contains": "Paris", "not_contains": "Lyon", "min_length": 5}}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 of 3 checks failed:*", "*contains 'Paris'*", "*not_contains 'Lyon'*Lyon*"])
    evaluation = saved(pytester)["evaluation_result"]
    assert evaluation["passed"] is False
    assert [c["name"] for c in evaluation["checks"] if not c["passed"]] == ["contains", "not_contains"]
    assert saved(pytester)["reasoning_score"] == pytest.approx(1 / 3)


def test_answer_check_and_key_concepts_set_the_reasoning_score(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{
        "id": "math", "prompt": "What is the sum?", "reasoning_type": "arithmetic",
        "expected": {"answer": 41, "key_concepts": ["add", "answer", "multiply", "carry"]}}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=1)
    result = saved(pytester)
    assert result["evaluation_result"]["passed"] is True
    assert result["reasoning_score"] == pytest.approx(0.5) and result["reasoning_type"] == "arithmetic"


def test_no_eval_runs_as_a_pure_benchmark(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "geo", "prompt": "Capital of France?",
                                                    "expected": {"contains": "Paris"}}])
    run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-no-eval").assert_outcomes(passed=1)
    assert saved(pytester)["evaluation_result"] is None


def test_evaluate_hook_adds_checks_and_sets_the_score(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_evaluate(test_case, result):
            if test_case.category == "medical_reasoning":
                result.reasoning_score = 0.25
                return [{"name": "mentions_dose", "passed": "mg" in result.response_text,
                         "expected": "a dose in mg", "detail": "no dose given"}]
    """)
    suite = write_suite(pytester.path / "s.json", [
        {"id": "med", "category": "medical_reasoning", "prompt": "Capital of France?"},
        {"id": "other", "category": "general", "prompt": "Capital of France?"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*mentions_dose*no dose given*"])
    med = saved(pytester)
    assert med["reasoning_score"] == 0.25
    assert med["evaluation_result"]["checks"][-1]["name"] == "mentions_dose"


def test_judge_grades_against_the_rubric_and_its_record_is_kept(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "good", "prompt": "Capital of France?", "expected": {"rubric": "RUBRIC-GOOD", "rubric_min_score": 6}},
        {"id": "bad", "prompt": "Capital of France?", "expected": {"rubric": "RUBRIC-BAD", "rubric_min_score": 6}}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*rubric >= 6: score 2*wrong city*"])
    judge = saved(pytester)["evaluation_result"]["judge"]
    assert judge["score"] == 8 and judge["reason"] == "names the right city"
    judge_requests = [r for r in stub.requests if "RUBRIC" in json.dumps(r["body"])]
    assert len(judge_requests) == 2 and all(r["body"]["temperature"] == 0 for r in judge_requests)


def test_judge_endpoint_option_sends_grading_elsewhere(pytester: pytest.Pytester, stub: OpenAIStub, httpserver_judge: Any) -> None:
    judge = OpenAIStub(default_answer='{"score": 9, "reason": "fine"}', models=("judge-model",))
    judge_url = judge.install(httpserver_judge)
    suite = write_suite(pytester.path / "s.json", [
        {"id": "good", "prompt": "Capital of France?", "expected": {"rubric": "anything"}}])
    run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-judge-endpoint", judge_url,
        "--llmbench-judge-model", "judge-model").assert_outcomes(passed=1)
    assert [r["body"]["model"] for r in judge.requests] == ["judge-model"]
    assert all("RUBRIC" not in json.dumps(r["body"]) for r in stub.requests)


def test_evaluate_hook_sees_the_built_in_checks_and_its_score_wins(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_evaluate(test_case, result):
            built_in = result.evaluation_result["checks"]
            result.reasoning_score = 0.5
            return [{"name": "saw_built_in", "passed": len(built_in) == 2, "expected": 2, "detail": ""}]
    """)
    suite = write_suite(pytester.path / "s.json", [
        {"id": "geo", "prompt": "Capital of France?", "expected": {"contains": "Lyon", "min_length": 1000}}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(failed=1)
    result = saved(pytester)
    assert [c["name"] for c in result["evaluation_result"]["checks"]] == ["contains", "min_length", "saw_built_in"]
    assert result["evaluation_result"]["checks"][-1]["passed"] is True
    assert result["reasoning_score"] == 0.5  # the hook's, though the share of checks passed is 2/3


def test_without_a_hook_score_the_share_counts_the_hooks_checks_too(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_evaluate(test_case, result):
            return [{"name": "extra", "passed": False, "expected": None, "detail": "no"}]
    """)
    suite = write_suite(pytester.path / "s.json", [{"id": "geo", "prompt": "Capital of France?",
                                                    "expected": {"contains": "Lyon"}}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(failed=1)
    assert saved(pytester)["reasoning_score"] == 0.5


@pytest.mark.parametrize(("body", "detail"), [
    ("raise RuntimeError('boom')", "*raised RuntimeError: boom*"),
    ("return {'name': 'x', 'passed': True}", "*returned dict, not a list of checks*"),
    ("return [{'passed': True}]", "*without 'name' and 'passed'*"),
])
def test_a_broken_evaluate_hook_is_a_failed_check_and_the_result_is_kept(pytester: pytest.Pytester, stub: OpenAIStub, body: Any, detail: Any) -> None:
    pytester.makeconftest(f"""
        def pytest_llmbench_evaluate(test_case, result):
            {body}
    """)
    suite = write_suite(pytester.path / "s.json", [{"id": "geo", "prompt": "Capital of France?"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([detail])
    assert "Traceback" not in result.stdout.str()
    check = saved(pytester)["evaluation_result"]["checks"][-1]
    assert check["name"] == "pytest_llmbench_evaluate" and check["passed"] is False


def test_a_session_fixed_on_completions_still_judges_through_chat(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "good", "prompt": "Capital of France?", "expected": {"rubric": "RUBRIC-GOOD"}}])
    pytester.runpytest("--llmbench-endpoint", stub.url + "/completions", "-p", "no:cacheprovider",
                       "--llmbench-suite", str(suite)).assert_outcomes(passed=1)
    assert [r["path"] for r in stub.requests] == ["/v1/completions", "/v1/chat/completions"]
