"""Running one test case: request, answer checks and SLOs, giving one ``TestResult``.

Kept apart from pytest so the same path serves JSON items and can be tested on its own; pytest's hooks
arrive as plain callables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .client import LLMClient, build_body
from .exchange import result_from_exchange
from .evaluate import evaluate, format_failures, needs_judge
from .judge import DEFAULT_MIN_SCORE, judge_question, run_judge
from .result import TestResult
from .slo import check_test_slo
from .suite import TestCase


def _no_request_hook(test_case: TestCase, request: dict[str, Any]) -> None:
    return None


def _no_extra_checks(test_case: TestCase, result: TestResult) -> list[dict[str, Any]]:
    return []


@dataclass
class Runner:
    """Everything one process needs to run test cases: the client, the judge and the hooks."""

    client: LLMClient
    stream: bool = False
    evaluate: bool = True
    judge: LLMClient | None = None  # None: the session's own client judges
    build_request: Callable[[TestCase, dict[str, Any]], None] = _no_request_hook
    extra_checks: Callable[[TestCase, TestResult], list[dict[str, Any]]] = _no_extra_checks

    def run(self, case: TestCase, model: str | None = None) -> TestResult:
        stream = self.stream if case.stream is None else case.stream
        body = build_body(prompt=case.prompt, messages=case.messages, parameters=case.parameters,
                          model=model or self.client.resolve_model(), stream=stream)
        self.build_request(case, body)
        exchange = self.client.send(case.api_type, body)
        result = result_from_exchange(exchange, test_id=case.id, test_name=case.name, category=case.category,
                                      reasoning_type=case.reasoning_type, suite_id=case.suite_id)
        if result.success and self.evaluate:
            self._evaluate(case, result)
        if result.success and case.slo:
            misses = check_test_slo(case.slo, result.to_dict())
            result.slo_result = {"passed": not misses, "misses": [m.to_dict() for m in misses]}
        return result

    def close(self) -> None:
        self.client.close()
        if self.judge is not None:
            self.judge.close()

    def _evaluate(self, case: TestCase, result: TestResult) -> None:
        expected = case.expected or {}
        evaluation = evaluate(expected, result.response_text, result.completion_tokens)
        checks = [c.to_dict() for c in evaluation.checks]
        judge_record: dict[str, Any] = {}
        if needs_judge(expected):
            judge = self.judge or self.client
            check, judge_record = run_judge(
                judge.chat, question=judge_question(case.prompt, case.messages), answer=result.response_text,
                rubric=expected["rubric"], min_score=expected.get("rubric_min_score", DEFAULT_MIN_SCORE),
                model=judge.model)
            checks.append(check.to_dict())
        result.reasoning_score = evaluation.reasoning_score if "key_concepts" in expected else _share(checks)
        score_before_hook = result.reasoning_score
        checks += self.extra_checks(case, result) or []
        if result.reasoning_score == score_before_hook and "key_concepts" not in expected:
            result.reasoning_score = _share(checks)
        if checks:
            result.evaluation_result = {"passed": all(c["passed"] for c in checks), "checks": checks}
        if judge_record:
            result.evaluation_result["judge"] = judge_record


def _share(checks: list[dict[str, Any]]) -> float | None:
    return sum(bool(c["passed"]) for c in checks) / len(checks) if checks else None


def failure_message(result: TestResult) -> str | None:
    """The short reason an item fails, or None when it passes."""
    if not result.success:
        return result.error_message or "request failed"
    lines = []
    if result.evaluation_result and not result.evaluation_result["passed"]:
        lines.append(format_failures(result.evaluation_result))
    if result.slo_result and not result.slo_result["passed"]:
        lines += [f"SLO missed: {m['message']}" for m in result.slo_result["misses"]]
    return "\n".join(lines) or None
