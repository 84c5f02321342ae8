"""Running one test case: request, answer checks and SLOs, giving one ``TestResult``.

Kept apart from pytest so the same path serves JSON items and can be tested on its own; pytest's hooks
arrive as plain callables.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .checks.check import Check
from .checks.embeddings import embedding_checks
from .checks.evaluate import DEFAULT_MIN_SCORE, evaluate, format_failures, needs_judge
from .checks.judge import judge_question, run_judge
from .checks.rerank import rerank_checks
from .checks.tool_calls import pair_results
from .collect.images import inline_images
from .collect.shaped import ShapedPrompts
from .collect.suite import TestCase
from .exceptions import HookError, LLMBenchError
from .http.api_errors import MESSAGE_LIMIT
from .http.client import LLMClient
from .http.embeddings import embeddings_body
from .http.openai import build_body, chat_endpoint
from .http.rerank import rerank_body
from .http.responses import RESPONSES, responses_body
from .http.tool_calls import answered_calls
from .metrics.slo import check_test_slo
from .options import Settings, name_options
from .result import ApiError, TestResult, now_iso

Answered = tuple[TestResult, tuple[float, float]]  # a request's result and its monotonic window


def _no_request_hook(test_case: TestCase, request: dict[str, Any]) -> None:
    return None


def _no_extra_checks(test_case: TestCase, result: TestResult) -> list[Any]:
    return []


@dataclass
class Runner:
    """Everything one process needs to run test cases: the client, the judge and the hooks."""

    client: LLMClient
    stream: bool = False
    evaluate: bool = True
    judge: LLMClient | None = None  # None: the session's own client judges
    build_request: Callable[[TestCase, dict[str, Any]], None] = _no_request_hook
    extra_checks: Callable[[TestCase, TestResult], list[Any]] = _no_extra_checks  # each hook's answer
    shaped: ShapedPrompts | None = None  # builds generated tests' prompts; made on first need
    references: dict[tuple[str, str | None, str], tuple[float, ...] | str] = dataclasses.field(
        default_factory=dict, repr=False)  # embeddings checks' reference texts: their vectors, or why none

    def run(self, case: TestCase, model: str | None = None) -> TestResult:
        return self.finish(case, self.send(case, model))

    def send(self, case: TestCase, model: str | None = None) -> TestResult:
        """The request alone, before its answer is checked: the part of a test that is the server's time."""
        return self.client.send(case.api_type, self.prepare(case, model))

    def send_all(self, case: TestCase, model: str | None = None) -> list[Answered]:
        """A test's requests with their windows, before their answers are checked: one, or a conversation's turns."""
        if case.turns is not None:
            return self.talk(case, model)
        started = time.monotonic()
        return [(self.send(case, model), (started, time.monotonic()))]

    def talk(self, case: TestCase, model: str | None = None) -> list[Answered]:
        """A conversation's requests, as a chat app's user sends them: each turn with every earlier answer in the
        context, after ``think_time_s``; a tool-result test's final request with the calls the first answer made
        and their scripted results. Stops at a failed turn, or calls the results cannot answer: the next has no
        answer to follow. Only sends (a load run calls this on its own threads); ``finish_answers`` checks."""
        assert case.turns is not None
        context = list(case.messages or ())
        answered: list[Answered] = []
        results: list[dict[str, Any]] = []  # the calls' results, which the next request carries
        for number, turn in enumerate(case.turns, 1):
            if number > 1 and case.think_time_s:
                time.sleep(case.think_time_s)
            fresh = results + ([{"role": "user", "content": turn.content}] if turn.content is not None else [])
            results = []
            context += fresh
            body = self.prepare(self._turn(case, context, fresh, answered), model)
            started = time.monotonic()
            result = self.client.send(case.api_type, body)
            answered.append((result, (started, time.monotonic())))
            if not result.success:
                break
            if number == len(case.turns) or case.turns[number].tool_results is None:
                context.append({"role": "assistant", "content": result.response_text})
                continue
            answers = self._tool_answers(case, number, result)
            if isinstance(answers, str):
                break
            made, results = answered_calls(result.response_text, answers, responses=case.api == RESPONSES)
            context += made
        return answered

    @staticmethod
    def _turn(case: TestCase, context: list[dict[str, Any]], fresh: list[dict[str, Any]],
              answered: list[Answered]) -> TestCase:
        """A turn's request: the whole conversation so far, or on the Responses API only what is new (the user's
        text, the calls' results) and the previous answer's id (``previous_response_id``: the server keeps the
        conversation)."""
        before = answered[-1][0].response_id if answered else None
        if case.api == RESPONSES and before:
            return dataclasses.replace(case, messages=tuple(fresh), turns=None,
                                       parameters={**case.parameters, "previous_response_id": before})
        return dataclasses.replace(case, messages=tuple(context), turns=None)

    def _tool_answers(self, case: TestCase, number: int,
                     result: TestResult) -> list[tuple[Mapping[str, Any], str]] | str:
        """Turn ``number``'s calls with the next turn's scripted results, or why the final request is not sent: a
        call no result answers (or a result no call asks for), or calls that fail their checks."""
        assert case.turns is not None
        pairs = pair_results(case.turns[number].tool_results or (), result.tool_calls, result.response_text)
        if isinstance(pairs, str):
            return pairs
        if self.evaluate:
            failed = evaluate(case.turns[number - 1].expected or {}, result.response_text, result.completion_tokens,
                              called=result.tool_calls, tools=result.request.get("tools")).failures
            if failed:
                return "the calls failed their checks: " + ", ".join(check.label for check in failed)
        return [(call, answer.content) for call, answer in pairs]

    def finish_answers(self, case: TestCase, answered: list[Answered]) -> list[Answered]:
        """Each answer finished: a conversation's turns each with the test's checks and the turn's own over them.
        A tool-result test's first answer whose calls the results cannot answer fails a ``tool_results`` check."""
        if case.turns is None:
            return [(self.finish(case, result), window) for result, window in answered]
        for number, (result, _) in enumerate(answered, 1):
            turn = case.turns[number - 1]
            own = dataclasses.replace(case, expected={**(case.expected or {}), **(turn.expected or {})} or None,
                                      slo={**(case.slo or {}), **(turn.slo or {})} or None, turns=None)
            result.turn = number
            self.finish(own, result)
            ahead = case.turns[number].tool_results if number < len(case.turns) else None
            if ahead is not None and number == len(answered) and result.success:
                unanswered = pair_results(ahead, result.tool_calls, result.response_text)
                if isinstance(unanswered, str):
                    add_failed_check(result, "tool_results", unanswered)
        return answered

    def prepare(self, case: TestCase, model: str | None = None) -> dict[str, Any]:
        """The request body, after pytest_llmbench_build_request (a load run prepares bodies ahead)."""
        stream = self.stream if case.stream is None else case.stream
        if case.shape is not None:
            if self.shaped is None:
                self.shaped = ShapedPrompts(self.client, None)
            case = self.shaped.apply(case, model)
        if case.input is not None:  # embeddings: nothing streams
            body = embeddings_body(case.input, case.parameters, model or self.client.resolve_model())
        elif case.query is not None and case.documents is not None:  # rerank: nothing streams either
            body = rerank_body(case.query, case.documents, case.parameters, model or self.client.resolve_model())
        elif case.api == RESPONSES:
            body = responses_body(case.prompt, case.messages, case.parameters, model or self.client.resolve_model(),
                                  stream)
            inline_images(body)
        else:
            body = build_body(prompt=case.prompt, messages=case.messages, parameters=case.parameters,
                              model=model or self.client.resolve_model(), stream=stream)
            inline_images(body)
        try:
            self.build_request(case, body)
        except Exception as exc:
            raise HookError(f"a pytest_llmbench_build_request hook raised {type(exc).__name__}: {exc}") from exc
        return body

    def finish(self, case: TestCase, result: TestResult) -> TestResult:
        """The result of a sent request, filled in: answer checks, judge, hooks and SLOs."""
        name_options_in(result)
        result.test_id, result.test_name, result.category = case.id, case.name, case.category
        result.reasoning_type, result.suite_id = case.reasoning_type, case.suite_id
        if case.shape is not None:
            self._shape_fields(case, result)
        if result.success and self.evaluate:
            self._evaluate(case, result)
        if result.success and case.slo:
            misses = check_test_slo(case.slo, result.to_dict())
            result.slo_result = {"passed": not misses, "misses": [m.to_dict() for m in misses]}
        return result

    def _shape_fields(self, case: TestCase, result: TestResult) -> None:
        """A generated test's requested lengths beside what the server's usage says it got."""
        shape = case.shape
        assert shape is not None
        result.requested_input_tokens, result.requested_output_tokens = shape.input_tokens, shape.output_tokens
        result.send_at_s = case.send_at_s
        result.input_tokens_estimated = self.shaped is not None and self.shaped.estimated
        result.stopped_early = bool(shape.exact_output and result.success and not result.tokens_estimated
                                    and result.completion_tokens is not None and shape.output_tokens is not None
                                    and result.completion_tokens < shape.output_tokens)

    def failed(self, case: TestCase, model: str | None, what: str, exc: BaseException) -> TestResult:
        """The failed result of a test whose run raised: it is recorded and its files are written like any other,
        with a message that says what broke (secrets masked before it is cut)."""
        text = f"{what} raised {type(exc).__name__}: {exc}"
        if isinstance(exc, LLMBenchError):  # a client error: its message names the options to set
            text = name_options(str(exc))
        message = self.client.secrets.clip(text, MESSAGE_LIMIT) or ""
        return TestResult(test_id=case.id, test_name=case.name, success=False, category=case.category,
                          error=ApiError("internal", message), error_message=message, timestamp=now_iso(),
                          model=model or self.client.model, reasoning_type=case.reasoning_type,
                          suite_id=case.suite_id, api_type=case.api_type)

    def close(self) -> None:
        self.client.close()
        if self.judge is not None:
            self.judge.close()

    def _evaluate(self, case: TestCase, result: TestResult) -> None:
        expected = case.expected or {}
        if case.input is not None:
            self._check_vectors(case, result)
            return
        if case.documents is not None:
            self._set_own_checks(case, result, rerank_checks(expected, result.ranking or [], case.documents))
            return
        evaluation = evaluate(expected, result.response_text, result.completion_tokens,
                              tokens_estimated=result.tokens_estimated, reasoning_text=result.reasoning_text,
                              called=result.tool_calls, tools=result.request.get("tools"))
        checks = [c.to_dict() for c in evaluation.checks]
        judge_record: dict[str, Any] | None = None
        if needs_judge(expected):
            judge = self.judge or self.client
            min_score = expected.get("rubric_min_score", DEFAULT_MIN_SCORE)
            try:
                check, judge_record = run_judge(
                    judge.chat, question=judge_question(case.prompt, case.messages), answer=result.response_text,
                    rubric=expected["rubric"], min_score=min_score, model=judge.model)
            except Exception as exc:  # noqa: BLE001 - a judge that breaks fails the rubric check, nothing more
                check = Check("rubric", False, min_score,
                              f"the judge raised {type(exc).__name__}: {name_options(str(exc))}")
            checks.append(check.to_dict())
        _set_evaluation(result, checks, judge_record)  # the hook sees the built-in outcome ...
        result.reasoning_score = None  # ... and may set the score; left None, the rule below decides
        checks += self._hook_checks(case, result)
        _set_evaluation(result, checks, judge_record)
        if result.reasoning_score is None:
            result.reasoning_score = evaluation.concept_coverage if "key_concepts" in expected else _share(checks)

    def _check_vectors(self, case: TestCase, result: TestResult) -> None:
        """An embeddings test's checks: on its vectors, a reference text embedded by the same model and
        parameters (once per process and text), and the hooks'."""
        def reference(text: str) -> tuple[float, ...] | str:
            key = (text, result.model, repr(sorted(case.parameters.items())))
            if key not in self.references:
                answer = self.client.send("embeddings", embeddings_body(text, case.parameters, result.model))
                self.references[key] = answer.vectors[0] if answer.success else name_options(
                    answer.error_message or "no vector")
            return self.references[key]

        self._set_own_checks(case, result, embedding_checks(case.expected or {}, result.vectors, reference))

    def _set_own_checks(self, case: TestCase, result: TestResult, own: list[Check]) -> None:
        """The checks of a test that has no answer text (embeddings, rerank), with the hooks'."""
        checks = [check.to_dict() for check in own]
        _set_evaluation(result, checks, None)
        checks += self._hook_checks(case, result)
        _set_evaluation(result, checks, None)
        if result.reasoning_score is None:
            result.reasoning_score = _share(checks)

    def _hook_checks(self, case: TestCase, result: TestResult) -> list[dict[str, Any]]:
        """Checks from pytest_llmbench_evaluate; a hook that raises or answers in the wrong shape is a failed
        check of its own, so the result and its files are never lost to a conftest bug."""
        try:
            answers = self.extra_checks(case, result)
        except Exception as exc:  # noqa: BLE001 - any error in user code becomes a readable failed check
            return [_hook_problem(f"raised {type(exc).__name__}: {exc}")]
        checks: list[dict[str, Any]] = []
        for answer in answers:  # one answer per hook implementation
            if answer is None:
                continue
            if isinstance(answer, Mapping) or not isinstance(answer, (list, tuple)):
                checks.append(_hook_problem(f"returned {type(answer).__name__}, not a list of checks"))
                continue
            for check in answer:
                if isinstance(check, Mapping) and "name" in check and "passed" in check:
                    checks.append({"name": str(check["name"]), "passed": bool(check["passed"]),
                                   "expected": check.get("expected"), "detail": check.get("detail")})
                else:
                    checks.append(_hook_problem(f"returned a check without 'name' and 'passed': {check!r:.80}"))
        return checks


def build_runner(settings: Settings, url: str, model: str | None, *,
                 build_request: Callable[[TestCase, dict[str, Any]], None] = _no_request_hook,
                 extra_checks: Callable[[TestCase, TestResult], list[Any]] = _no_extra_checks,
                 in_flight: int = 1) -> Runner:
    """The runner for one process. The judge is a client of its own only when it talks elsewhere: another
    endpoint or model, or chat where the session is fixed on /completions. ``in_flight``: the most requests
    this process keeps in flight, so that every one of them keeps its connection open."""
    model = model or (settings.model[0] if settings.model else None)
    config = settings.client_config(url)
    config.connections = max(config.connections, in_flight)
    client = LLMClient(config, model=model)
    judge_url = settings.judge_endpoint or chat_endpoint(url)
    judge = None
    if judge_url != url or settings.judge_model:
        judge = LLMClient(settings.client_config(judge_url), model=settings.judge_model or model)
    return Runner(client=client, stream=settings.stream, evaluate=not settings.no_eval, judge=judge,
                  build_request=build_request, extra_checks=extra_checks,
                  shaped=ShapedPrompts(client, settings.tokenizer))


def name_options_in(result: TestResult) -> None:
    """The client's messages in ``result`` name the options to set, not the client's settings (name_options)."""
    if result.error_message:
        result.error_message = name_options(result.error_message)
    if result.error is not None:
        result.error.message = name_options(result.error.message)
    for attempt in result.attempt_log:
        if attempt.error:
            attempt.error = name_options(attempt.error)


def add_failed_check(result: TestResult, name: str, detail: str) -> None:
    """A failed check of its own for something that broke after the request (a hook that raised)."""
    evaluation = result.evaluation_result or {}
    checks = [*evaluation.get("checks", []), {"name": name, "passed": False, "expected": None, "detail": detail}]
    result.evaluation_result = {**evaluation, "passed": False, "checks": checks}


def _hook_problem(detail: str) -> dict[str, Any]:
    return {"name": "pytest_llmbench_evaluate", "passed": False, "expected": "a list of checks", "detail": detail}


def _set_evaluation(result: TestResult, checks: list[dict[str, Any]], judge_record: dict[str, Any] | None) -> None:
    if not checks:
        return
    result.evaluation_result = {"passed": all(c["passed"] for c in checks), "checks": checks}
    if judge_record:
        result.evaluation_result["judge"] = judge_record


def _share(checks: list[dict[str, Any]]) -> float | None:
    return sum(bool(c["passed"]) for c in checks) / len(checks) if checks else None


def failure_message(result: TestResult, case: TestCase) -> str | None:
    """The short reason an item fails, or None when it passes; a conversation's turn says which it is (``turn 2``,
    or a tool-result test's ``tool calls`` / ``final answer``)."""
    message = _failure(result)
    if not message or result.turn is None or case.turns is None:
        return message
    return f"{case.turns[result.turn - 1].stage(result.turn)}: {message}"


def _failure(result: TestResult) -> str | None:
    if not result.success:
        return result.error_message or "request failed"
    lines = []
    if result.evaluation_result and not result.evaluation_result["passed"]:
        lines.append(format_failures(result.evaluation_result))
    if result.slo_result and not result.slo_result["passed"]:
        lines += [f"SLO missed: {m['message']}" for m in result.slo_result["misses"]]
    return "\n".join(lines) or None
