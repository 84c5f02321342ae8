"""Check a model's answer against a test's `expected` block.

Every key of `expected` becomes one or more named checks; a failed check carries a short, escaped
excerpt of the answer so that a failure can be understood without opening the result file.
A `rubric` is only validated here: judge.py asks a model to grade it, in a check also named `rubric`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..textsafe import escape_for_terminal, excerpt
from .check import Check, show
from .expectations import problems_by_key, regex_flags
from .extract import answer_json, extract_answer, normalize_answer, number_value
from .schema import schema_violation
from .tool_calls import check_tool_calls

REGEX_TIMEOUT = 1.0  # seconds a suite's pattern may run on one answer
KEY_CONCEPTS_PASS = 0.5  # the key_concepts check passes when at least half of them are found
DEFAULT_MIN_SCORE = 5.0  # the rubric check: at least half marks, as key_concepts needs half the concepts
DEFAULT_TOLERANCE = 1e-6  # for `answer` and numeric `equals`
Called = Sequence[Mapping[str, Any]] | None
_HEAD = 60  # characters of the answer shown when the problem has no position
# Keys that only tune another check; a problem in one is reported under the check it tunes.
_MODIFIER_OF = {"regex_flags": "regex", "answer_tolerance": "answer", "rubric_min_score": "rubric",
               "tool_calls_order": "tool_calls"}


@dataclass
class Evaluation:
    """The checks of one answer; `passed` follows the list, so a check appended later counts like any other."""

    checks: list[Check] = field(default_factory=list)
    concept_coverage: float | None = None  # share of key_concepts found; None without key_concepts

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        checks = [
            Check(str(c.get("name", "check")), bool(c.get("passed")), c.get("expected"), str(c.get("detail") or ""))
            for c in data.get("checks", [])
        ]
        return cls(checks)


@dataclass(frozen=True)
class _Subject:
    text: str
    completion_tokens: int | None
    tokens_estimated: bool
    tolerance: float  # answer_tolerance, or the default when it is missing or broken (a failed check already)
    expected: dict[str, Any]
    reasoning: str = ""  # the thinking text, which only `expected.reasoning` reads
    called: Called = None  # the functions the answer called (http/tool_calls.py), which `expected.tool_calls` reads
    tools: Any = None  # the request's tools: each call's arguments are checked against its function's schema


def evaluate(
    expected: dict[str, Any], response_text: str, completion_tokens: int | None, *, tokens_estimated: bool = False,
    reasoning_text: str = "", called: Called = None, tools: Any = None,
) -> Evaluation:
    """Run every check `expected` asks for. A malformed expectation is a failed check, never a crash.

    `tokens_estimated`: the server gave no usage, so the count is an estimate, which the token checks say.
    `reasoning_text`: a reasoning model's thinking, kept apart from the answer; `expected.reasoning` checks it.
    `called` and `tools`: the functions the answer called and the ones the request offered (`expected.tool_calls`)."""
    problems = problems_by_key(expected)
    tolerance = expected.get("answer_tolerance", DEFAULT_TOLERANCE)
    if "answer_tolerance" in problems:
        tolerance = DEFAULT_TOLERANCE
    subject = _Subject(response_text, completion_tokens, tokens_estimated, tolerance, expected, reasoning_text,
                       called, tools)
    evaluation = Evaluation()
    for key, problem in problems.items():
        owner = _MODIFIER_OF.get(key, key)
        name = owner if owner in expected else key
        # A rubric check, broken here or graded by the judge, shows the score it needs: "rubric >= 6".
        shown = expected.get("rubric_min_score", DEFAULT_MIN_SCORE) if name == "rubric" else expected.get(name)
        evaluation.checks.append(Check(name, False, shown, f"invalid expectation: {key}: {problem}"))
    broken = {_MODIFIER_OF.get(key, key) for key in problems}
    for key, run in _CHECKS.items():
        if key in expected and key not in broken:
            try:
                evaluation.checks.extend(run(expected[key], subject))
            except Exception as exc:  # noqa: BLE001 - a check that breaks on a hostile answer fails alone
                evaluation.checks.append(Check(key, False, expected[key], f"check raised {type(exc).__name__}: {exc}"))
    if "key_concepts" in expected and "key_concepts" not in broken:
        found, concepts = _concepts_found(expected["key_concepts"], response_text)
        evaluation.concept_coverage = len(found) / len(concepts)
    return evaluation


def needs_judge(expected: dict[str, Any]) -> bool:
    """True when the test has a usable rubric (a broken one is already a failed check)."""
    return "rubric" in expected and not {"rubric", "rubric_min_score"} & problems_by_key(expected).keys()


def format_failures(evaluation: Evaluation | dict[str, Any]) -> str:
    """The failure message of a test item: a count and the failed checks' labels on the first line (pytest's
    one-line summary shows only that), then one escaped line per failed check with its detail.

    Takes an Evaluation or the result's `evaluation_result` dict, which may hold checks added by hooks."""
    if isinstance(evaluation, dict):
        evaluation = Evaluation.from_dict(evaluation)
    failed = evaluation.failures
    if not failed:
        return ""
    total = len(evaluation.checks)
    names = ", ".join(check.label for check in failed)
    lines = [escape_for_terminal(f"{len(failed)} of {total} check{'' if total == 1 else 's'} failed: {names}")]
    for check in failed:
        line = f"{check.label}: {check.detail}" if check.detail else check.label
        lines.append(f"  ✗ {escape_for_terminal(line)}")
    return "\n".join(lines)


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _find(needle: str, text: str, ignore_case: bool = False) -> re.Match[str] | None:
    return re.search(re.escape(needle), text, re.IGNORECASE if ignore_case else 0)


def _find_word(needle: str, text: str) -> re.Match[str] | None:
    """Case-insensitive, and not inside a longer word: "AI" is not found in "said", nor "heat" in "wheat".
    Only an end that is a word character needs a boundary, so "C++" and ".NET" still work."""
    before = r"(?<!\w)" if re.match(r"\w", needle) else ""
    after = r"(?!\w)" if re.search(r"\w\Z", needle) else ""
    return re.search(before + re.escape(needle) + after, text, re.IGNORECASE)


def _head(text: str) -> str:
    return f'"{excerpt(text, context=_HEAD)}"'


def _around(text: str, match: re.Match[str]) -> str:
    return f'"{excerpt(text, match.start(), match.end())}"'


def _contains(value: Any, subject: _Subject, name: str = "contains", ignore_case: bool = False) -> list[Check]:
    checks = []
    for needle in _strings(value):
        if _find(needle, subject.text, ignore_case):
            checks.append(Check(name, True, needle))
            continue
        other_case = None if ignore_case else _find(needle, subject.text, ignore_case=True)
        if other_case:
            detail = f"found only with other letter case: {_around(subject.text, other_case)}"
        else:
            detail = f"not found in answer: {_head(subject.text)}"
        checks.append(Check(name, False, needle, detail))
    return checks


def _icontains(value: Any, subject: _Subject) -> list[Check]:
    return _contains(value, subject, "icontains", ignore_case=True)


def _not_contains(value: Any, subject: _Subject) -> list[Check]:
    checks = []
    for needle in _strings(value):
        hit = _find(needle, subject.text)
        detail = f"found at character {hit.start()}: {_around(subject.text, hit)}" if hit else ""
        checks.append(Check("not_contains", hit is None, needle, detail))
    return checks


def _contains_any(value: Any, subject: _Subject) -> list[Check]:
    needles = _strings(value)
    passed = any(_find(needle, subject.text) for needle in needles)
    return [Check("contains_any", passed, needles, "" if passed else f"none found in answer: {_head(subject.text)}")]


def _regex(value: Any, subject: _Subject) -> list[Check]:
    """Suite patterns run under a time limit (the ``regex`` package's): ``^(a|a)+$`` on a hostile answer would
    otherwise backtrack for hours, past every timeout the plugin has."""
    import regex  # here: loading it costs every run 5 ms, and only suites with this check need it

    spec = subject.expected.get("regex_flags")
    flags = regex_flags(spec)
    shown_flags = f" (flags {spec if isinstance(spec, str) else ', '.join(spec)})" if spec else ""
    checks = []
    for pattern in _strings(value):
        try:
            passed = regex.search(pattern, subject.text, flags, timeout=REGEX_TIMEOUT) is not None
        except TimeoutError:
            checks.append(Check("regex", False, pattern, f"regex timed out after {REGEX_TIMEOUT:g} s"))
            continue
        detail = "" if passed else f"no match{shown_flags} in answer: {_head(subject.text)}"
        checks.append(Check("regex", passed, pattern, detail))
    return checks


def _equals(value: Any, subject: _Subject) -> list[Check]:
    if not isinstance(value, str):  # a JSON number compares as a number: 42.0 equals "42"
        got = subject.text.strip()
        if _same_number(value, got, subject.tolerance):
            return [Check("equals", True, value)]
        if number_value(got) is None:
            return [Check("equals", False, value, f"answer is not a single number: {_head(got)}")]
        return [Check("equals", False, value, f"answer is {got}{_tolerance_note(subject.tolerance)}")]
    want, got = value.strip(), subject.text.strip()
    if want == got:
        return [Check("equals", True, value)]
    same = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    detail = f'answer differs from character {same}: "{excerpt(got, same, context=30)}"'
    return [Check("equals", False, value, detail)]


def _starts_with(value: Any, subject: _Subject) -> list[Check]:
    text = subject.text.lstrip()
    passed = text.startswith(value.lstrip())
    return [Check("starts_with", passed, value, "" if passed else f"answer starts: {_head(text)}")]


def _is_json(value: Any, subject: _Subject) -> list[Check]:
    if value is not True:
        return []  # `is_json: false` asks for nothing
    _, problem = answer_json(subject.text)
    return [Check("is_json", problem is None, True, problem or "")]


def _json_schema(value: Any, subject: _Subject) -> list[Check]:
    parsed, problem = answer_json(subject.text)
    if problem is None:
        problem = schema_violation(value, parsed)
    return [Check("json_schema", problem is None, value, problem or "")]


def _within(name: str, limit: int, actual: int) -> bool:
    return actual >= limit if name.startswith("min_") else actual <= limit


def _length(name: str) -> Callable[[Any, _Subject], list[Check]]:
    def check(value: Any, subject: _Subject) -> list[Check]:
        text = subject.text.strip()
        passed = _within(name, value, len(text))
        return [Check(name, passed, value, "" if passed else f"answer has {len(text)} characters: {_head(text)}")]

    return check


def _tokens(name: str) -> Callable[[Any, _Subject], list[Check]]:
    def check(value: Any, subject: _Subject) -> list[Check]:
        if subject.completion_tokens is None:
            return [Check(name, False, value, "completion token count unknown (no usage from the server)")]
        tokens = subject.completion_tokens
        estimated = " (estimated)" if subject.tokens_estimated else ""  # no usage from the server: counted here
        return [Check(name, _within(name, value, tokens), value, f"answer used {tokens} completion tokens{estimated}")]

    return check


def _answer(value: Any, subject: _Subject) -> list[Check]:
    text = subject.text
    want = number_value(value)
    found = extract_answer(text, numeric=want is not None)
    if found is None:
        kind = "number" if want is not None else "answer"
        ending = excerpt(text, len(text), context=_HEAD)
        return [Check("answer", False, value, f'no {kind} found; answer ends: "{ending}"')]
    if want is not None:
        passed = _same_number(want, found.text, subject.tolerance)
        shown = found.text
    else:
        passed = found.normalized == normalize_answer(value)
        shown = "'" + excerpt(found.text, context=_HEAD) + "'"
    if passed:
        return [Check("answer", True, value, f"extracted {shown}")]
    within = _tolerance_note(subject.tolerance) if want is not None else ""
    context = excerpt(text, found.start, found.end)
    return [Check("answer", False, value, f'extracted {shown}{within} from "{context}"')]


def _same_number(want: float, text: str, tolerance: float) -> bool:
    got = number_value(text)
    return got is not None and abs(got - want) <= tolerance


def _tolerance_note(tolerance: float) -> str:
    return f" (tolerance {tolerance})" if tolerance != DEFAULT_TOLERANCE else ""


def _concepts_found(value: Any, text: str) -> tuple[list[str], list[str]]:
    concepts = _strings(value)
    return [c for c in concepts if _find_word(c, text)], concepts


def _key_concepts(value: Any, subject: _Subject) -> list[Check]:
    found, concepts = _concepts_found(value, subject.text)
    coverage = len(found) / len(concepts)
    detail = f"found {len(found)} of {len(concepts)} ({coverage:.0%})"
    missing = [c for c in concepts if c not in found]
    if missing:
        detail += f", missing {show(missing)}"
    return [Check("key_concepts", coverage >= KEY_CONCEPTS_PASS, concepts, detail)]


def _reasoning(value: Any, subject: _Subject) -> list[Check]:
    """The nested checks run on the thinking text, each named ``reasoning.<check>``."""
    if not subject.reasoning:
        return [Check("reasoning", False, None, "the response carried no reasoning text (reasoning_content or "
                                                "reasoning) to check")]
    inner = evaluate(value, subject.reasoning, None).checks
    return [Check(f"reasoning.{c.name}", c.passed, c.expected, c.detail.replace("in answer", "in reasoning"))
            for c in inner]


def _tool_calls(value: Any, subject: _Subject) -> list[Check]:
    order = subject.expected.get("tool_calls_order", "given")
    return check_tool_calls(value, order, subject.called, subject.tools, subject.text)


# The order of this table is the order of the checks in results and failure messages.
_CHECKS: dict[str, Callable[[Any, _Subject], list[Check]]] = {
    "contains": _contains,
    "icontains": _icontains,
    "not_contains": _not_contains,
    "contains_any": _contains_any,
    "regex": _regex,
    "equals": _equals,
    "starts_with": _starts_with,
    "is_json": _is_json,
    "json_schema": _json_schema,
    "min_length": _length("min_length"),
    "max_length": _length("max_length"),
    "min_tokens": _tokens("min_tokens"),
    "max_tokens": _tokens("max_tokens"),
    "answer": _answer,
    "key_concepts": _key_concepts,
    "reasoning": _reasoning,
    "tool_calls": _tool_calls,
}
