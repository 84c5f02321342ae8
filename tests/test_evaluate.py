from __future__ import annotations

from typing import Any

import pytest

from pytest_llmbench.checks.check import Check
from pytest_llmbench.checks.evaluate import (
    evaluate,
    format_failures,
    needs_judge,
)
from pytest_llmbench.checks.expectations import EMBEDDING_KEYS, KNOWN_KEYS
from pytest_llmbench.checks.rerank import RERANK_KEYS

PARIS = "The capital of France is Paris.\nIt has been the capital since 987."
JSON_ANSWER = 'Here you go:\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?'
SCHEMA = {"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}


def only_check(expected: dict[str, Any], text: str, tokens: int | None = 10) -> Check:
    evaluation = evaluate(expected, text, tokens)
    assert len(evaluation.checks) == 1, evaluation.checks
    return evaluation.checks[0]


@pytest.mark.parametrize(
    ("expected", "text"),
    [
        ({"contains": "Paris"}, PARIS),
        ({"icontains": "PARIS"}, PARIS),
        ({"not_contains": "Lyon"}, PARIS),
        ({"contains_any": ["Lyon", "Paris"]}, PARIS),
        ({"regex": r"since \d{3}"}, PARIS),
        ({"regex": r"^it HAS", "regex_flags": "IM"}, PARIS),
        ({"regex": r"^it HAS", "regex_flags": ["IGNORECASE", "MULTILINE"]}, PARIS),
        ({"equals": "Paris"}, "  Paris \n"),
        ({"equals": 42}, "42"),
        ({"equals": 42.0}, "42"),
        ({"equals": 0.75}, " 3/4 "),
        ({"equals": 42, "answer_tolerance": 0.5}, "42.3"),
        ({"starts_with": "The capital"}, "\n  " + PARIS),
        ({"starts_with": " The capital"}, PARIS),
        ({"is_json": True}, ' {"a": [1, 2]} '),
        ({"is_json": True}, JSON_ANSWER),
        ({"json_schema": SCHEMA}, JSON_ANSWER),
        ({"min_length": 5}, "  Paris  "),
        ({"max_length": 5}, "  Paris  "),
        ({"min_tokens": 10}, PARIS),
        ({"max_tokens": 10}, PARIS),
        ({"answer": 42}, "6 times 7 gives 42."),
        ({"answer": "paris"}, "Final answer: **Paris**."),
        ({"key_concepts": ["capital", "France", "Eiffel"]}, PARIS),
        ({"key_concepts": ["C++", ".NET", "AI"]}, "Both C++ and .NET, but no AI."),
    ],
)
def test_check_passes_when_the_answer_meets_it(expected: dict[str, Any], text: str) -> None:
    check = only_check(expected, text)
    assert check.passed, check.detail


@pytest.mark.parametrize(
    ("expected", "text", "detail"),
    [
        ({"contains": "Lyon"}, PARIS, 'not found in answer: "The capital of France is Paris.\\nIt has been the capital sinc…"'),
        ({"contains": "paris"}, PARIS, 'found only with other letter case: "The capital of France is Paris.\\nIt has been the capital since 987."'),
        ({"icontains": "LYON"}, "Paris", 'not found in answer: "Paris"'),
        ({"not_contains": "since"}, PARIS, 'found at character 56: "…rance is Paris.\\nIt has been the capital since 987."'),
        ({"contains_any": ["Lyon", "Nice"]}, "Paris", 'none found in answer: "Paris"'),
        ({"regex": r"\d{4}"}, "in 987", 'no match in answer: "in 987"'),
        ({"regex": r"^paris", "regex_flags": "M"}, "Paris", 'no match (flags M) in answer: "Paris"'),
        ({"regex": r"^paris", "regex_flags": ["MULTILINE", "S"]}, "Paris", 'no match (flags MULTILINE, S) in answer: "Paris"'),
        ({"equals": "Paris"}, " Paris, France", 'answer differs from character 5: "Paris, France"'),
        ({"equals": 42}, "41", "answer is 41"),
        ({"equals": 42, "answer_tolerance": 0.5}, "41", "answer is 41 (tolerance 0.5)"),
        ({"equals": 42}, "42 apples", 'answer is not a single number: "42 apples"'),
        ({"starts_with": "Paris"}, "  It is Paris", 'answer starts: "It is Paris"'),
        ({"is_json": True}, "{'a': 1}", "answer is not JSON (Expecting property name enclosed in double quotes at character 1): \"{'a': 1}\""),
        ({"json_schema": SCHEMA}, '{"name": "Ada", "age": "36"}', "$.age: '36' is not of type 'integer'"),
        ({"json_schema": SCHEMA}, "no json here", 'answer is not JSON (Expecting value at character 0): "no json here"'),
        ({"json_schema": {"format": "email"}}, '"not an email"', "$: 'not an email' is not a 'email'"),
        ({"min_length": 10}, " Paris ", 'answer has 5 characters: "Paris"'),
        ({"max_length": 3}, "Paris", 'answer has 5 characters: "Paris"'),
        ({"min_tokens": 50}, "Paris", "answer used 10 completion tokens"),
        ({"max_tokens": 5}, "Paris", "answer used 10 completion tokens"),
        ({"answer": 42}, "so the answer is 41.", 'extracted 41 from "so the answer is 41."'),
        ({"answer": "Paris"}, "Answer: Lyon", "extracted 'Lyon' from \"Answer: Lyon\""),
        ({"answer": 42}, "I do not know.", 'no number found; answer ends: "I do not know."'),
        ({"key_concepts": ["capital", "Seine", "Louvre"]}, PARIS, "found 1 of 3 (33%), missing ['Seine', 'Louvre']"),
        ({"key_concepts": ["heat", "cat", "AI"]}, "The wheat category was said.",
         "found 0 of 3 (0%), missing ['heat', 'cat', 'AI']"),
    ],
)
def test_check_fails_with_an_excerpt_of_the_problem(expected: dict[str, Any], text: str, detail: str) -> None:
    check = only_check(expected, text)
    assert not check.passed
    assert check.detail == detail


def test_each_string_of_a_list_is_its_own_check() -> None:
    evaluation = evaluate({"contains": ["Paris", "Lyon", "France"]}, PARIS, None)
    assert [(c.expected, c.passed) for c in evaluation.checks] == [("Paris", True), ("Lyon", False), ("France", True)]
    assert not evaluation.passed


def test_failure_message_counts_failures_and_names_each_check() -> None:
    answer = "The capital of France is Lyon, a city I like. Let me check my sums: so the answer is 41."
    evaluation = evaluate({"contains": ["Paris", "France"], "answer": 42, "min_length": 5, "max_length": 500}, answer, None)
    assert format_failures(evaluation) == (
        "2 of 5 checks failed: contains 'Paris', answer == 42\n"
        '  ✗ contains \'Paris\': not found in answer: "The capital of France is Lyon, a city I like. Let me check m…"\n'
        '  ✗ answer == 42: extracted 41 from "… Let me check my sums: so the answer is 41."'
    )


def test_failure_message_escapes_terminal_controls_in_the_answer() -> None:
    message = format_failures(evaluate({"contains": "Paris"}, "\x1b[2J\x1b]0;pwned\x07Lyon\u202e", None))
    assert message == '1 of 1 check failed: contains \'Paris\'\n  ✗ contains \'Paris\': not found in answer: "\\x1b[2J\\x1b]0;pwned\\x07Lyon\\u202e"'


def test_failure_message_reads_the_stored_dict_form_with_hook_checks() -> None:
    checks = [check.to_dict() for check in evaluate({"equals": "4"}, "5", None).checks]
    checks.append({"name": "custom", "passed": False, "expected": None, "detail": "said so"})
    assert format_failures({"passed": False, "checks": checks}).splitlines() == [
        "2 of 2 checks failed: equals '4', custom",
        '  ✗ equals \'4\': answer differs from character 0: "5"',
        "  ✗ custom: said so",
    ]


def test_passing_evaluation_has_no_failure_message() -> None:
    assert format_failures(evaluate({"contains": "Paris"}, PARIS, None)) == ""


def test_check_dict_is_the_evaluation_result_shape() -> None:
    evaluation = evaluate({"icontains": "paris", "min_tokens": 5}, PARIS, None)
    assert [check.to_dict() for check in evaluation.checks] == [
        {"name": "icontains", "passed": True, "expected": "paris", "detail": ""},
        {"name": "min_tokens", "passed": False, "expected": 5,
         "detail": "completion token count unknown (no usage from the server)"},
    ]


def test_empty_expectation_passes_with_no_checks_and_no_coverage() -> None:
    evaluation = evaluate({}, "anything", None)
    assert evaluation.passed
    assert evaluation.checks == []
    assert evaluation.concept_coverage is None


def test_concept_coverage_is_the_share_of_key_concepts_found() -> None:
    evaluation = evaluate({"key_concepts": ["capital", "France", "Seine", "Louvre"], "contains": "Paris"}, PARIS, None)
    assert evaluation.concept_coverage == 0.5
    assert evaluation.passed  # half the concepts is enough for the check
    assert evaluate({"contains": "Paris"}, PARIS, None).concept_coverage is None


def test_estimated_token_counts_say_so_whether_they_pass_or_fail() -> None:
    failed = evaluate({"max_tokens": 5}, "Paris", 10, tokens_estimated=True).checks[0]
    passed = evaluate({"max_tokens": 50}, "Paris", 10, tokens_estimated=True).checks[0]
    assert (failed.passed, failed.detail) == (False, "answer used 10 completion tokens (estimated)")
    assert (passed.passed, passed.detail) == (True, "answer used 10 completion tokens (estimated)")
    assert only_check({"max_tokens": 50}, "Paris").detail == "answer used 10 completion tokens"


def test_broken_answer_tolerance_leaves_numeric_equals_at_the_default() -> None:
    evaluation = evaluate({"equals": 42, "answer_tolerance": "lots"}, "42", None)
    assert [(c.name, c.passed) for c in evaluation.checks] == [("answer_tolerance", False), ("equals", True)]


def test_answer_tolerance_widens_numeric_comparison_and_is_shown_on_failure() -> None:
    assert only_check({"answer": 3.14, "answer_tolerance": 0.01}, "Answer: 3.141").passed
    check = only_check({"answer": 3.14, "answer_tolerance": 0.001}, "Answer: 3.2")
    assert check.detail == 'extracted 3.2 (tolerance 0.001) from "Answer: 3.2"'


def test_answer_given_as_formatted_string_compares_as_number() -> None:
    assert only_check({"answer": "$1,234.50"}, "The total is 1234.5 dollars.").passed
    assert only_check({"answer": "3/4"}, "Answer: 0.75").passed


def test_tokens_unknown_fails_token_checks_saying_so() -> None:
    check = only_check({"max_tokens": 100}, "short", tokens=None)
    assert not check.passed
    assert "unknown" in check.detail


def test_unparsable_fenced_block_is_reported_with_its_content() -> None:
    check = only_check({"is_json": True}, 'Result:\n```json\n{"a": 1,}\n```')
    assert not check.passed
    assert check.detail.startswith("the fenced block is not JSON (")
    assert check.detail.endswith(': "{"a": 1,}\\n"')  # the parser's wording differs across Pythons


def test_is_json_false_asks_for_nothing() -> None:
    assert evaluate({"is_json": False}, "prose", None).checks == []


def test_invalid_expectation_is_a_failed_check_not_a_crash() -> None:
    evaluation = evaluate({"regex": "(unclosed", "contains": "Paris"}, PARIS, None)
    assert [(c.name, c.passed) for c in evaluation.checks] == [("regex", False), ("contains", True)]
    assert evaluation.checks[0].detail.startswith("invalid expectation: regex: pattern '(unclosed' does not compile")


def test_bad_modifier_fails_the_check_it_tunes() -> None:
    check = only_check({"regex": "x", "regex_flags": "Q"}, "x")
    assert (check.name, check.passed) == ("regex", False)
    assert check.detail.startswith("invalid expectation: regex_flags: unknown flag 'Q'")


def test_misspelt_key_fails_loudly_with_a_suggestion() -> None:
    check = only_check({"contians": "Paris"}, PARIS)
    assert not check.passed
    assert check.detail == "invalid expectation: contians: unknown expectation (did you mean 'contains'?)"


def test_rubric_is_left_to_the_judge() -> None:
    expected = {"rubric": "Mentions the Seine.", "rubric_min_score": 6}
    assert evaluate(expected, PARIS, None).checks == []
    assert needs_judge(expected)
    assert not needs_judge({"contains": "x"})


def test_broken_rubric_fails_here_and_is_not_sent_to_the_judge() -> None:
    expected = {"rubric": "Mentions the Seine.", "rubric_min_score": 11}
    check = only_check(expected, PARIS)
    assert (check.name, check.passed, check.label) == ("rubric", False, "rubric >= 11")
    assert not needs_judge(expected)
    assert only_check({"rubric": " "}, PARIS).label == "rubric >= 5.0"


def test_each_check_is_named_after_its_expectation_key() -> None:
    complete = {
        "contains": "a", "icontains": "a", "not_contains": "z", "contains_any": ["a"], "regex": "a",
        "regex_flags": "I", "equals": "a", "starts_with": "a", "is_json": True, "json_schema": {},
        "min_length": 1, "max_length": 9, "min_tokens": 1, "max_tokens": 9, "answer": "a",
        "answer_tolerance": 0.1, "key_concepts": ["a"], "rubric": "Says a.", "rubric_min_score": 5,
        "reasoning": {"contains": "a"}, "tool_calls": [{"name": "f"}], "tool_calls_order": "any",
    }
    assert complete.keys() == KNOWN_KEYS - EMBEDDING_KEYS - RERANK_KEYS  # vectors, rankings: tests of their own
    names = [check.name for check in evaluate(complete, "a", 1, reasoning_text="a", called=[
        {"name": "f", "arguments": "{}"}], tools=[{"type": "function", "function": {"name": "f"}}]).checks]
    modifiers_and_judged = {"regex_flags", "answer_tolerance", "rubric_min_score", "rubric", "tool_calls_order"}
    # the reasoning block's checks are named after the key inside it; each call made has its arguments checked
    assert names == [key if key != "reasoning" else "reasoning.contains" for key in complete
                     if key not in modifiers_and_judged] + ["tool_arguments"]


def test_labels_name_the_check_and_its_expectation() -> None:
    assert [Check("answer", False, 42).label, Check("is_json", False, True).label,
            Check("contains_any", False, ["a", "b"]).label, Check("max_tokens", False, 9).label] == [
        "answer == 42", "is_json", "contains_any ['a', 'b']", "max_tokens <= 9"]
