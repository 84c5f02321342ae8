from __future__ import annotations

import sys
from typing import Any

import pytest

from pytest_llmbench.evaluate import Check, Evaluation, evaluate, format_failures, needs_judge
from pytest_llmbench.expectations import KNOWN_KEYS

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
        ({"starts_with": "The capital"}, "\n  " + PARIS),
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
        ({"equals": "Paris"}, " Paris, France", 'answer differs from character 5: "Paris, France"'),
        ({"starts_with": "Paris"}, "  It is Paris", 'answer starts: "It is Paris"'),
        ({"is_json": True}, "{'a': 1}", "answer is not JSON (Expecting property name enclosed in double quotes at character 1): \"{'a': 1}\""),
        ({"json_schema": SCHEMA}, '{"name": "Ada", "age": "36"}', "$.age: '36' is not of type 'integer'"),
        ({"json_schema": SCHEMA}, "no json here", 'answer is not JSON (Expecting value at character 0): "no json here"'),
        ({"min_length": 10}, " Paris ", 'answer has 5 characters: "Paris"'),
        ({"max_length": 3}, "Paris", 'answer has 5 characters: "Paris"'),
        ({"min_tokens": 50}, "Paris", "answer used 10 completion tokens"),
        ({"max_tokens": 5}, "Paris", "answer used 10 completion tokens"),
        ({"answer": 42}, "so the answer is 41.", 'extracted 41 from "so the answer is 41."'),
        ({"answer": "Paris"}, "Answer: Lyon", "extracted 'Lyon' from \"Answer: Lyon\""),
        ({"answer": 42}, "I do not know.", 'no number found; answer ends: "I do not know."'),
        ({"key_concepts": ["capital", "Seine", "Louvre"]}, PARIS, "found 1 of 3 (33%), missing ['Seine', 'Louvre']"),
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
        "2 of 5 checks failed:\n"
        '  ✗ contains \'Paris\': not found in answer: "The capital of France is Lyon, a city I like. Let me check m…"\n'
        '  ✗ answer == 42: extracted 41 from "… Let me check my sums: so the answer is 41."'
    )


def test_failure_message_escapes_terminal_controls_in_the_answer() -> None:
    message = format_failures(evaluate({"contains": "Paris"}, "\x1b[2J\x1b]0;pwned\x07Lyon\u202e", None))
    assert message == '1 of 1 check failed:\n  ✗ contains \'Paris\': not found in answer: "\\x1b[2J\\x1b]0;pwned\\x07Lyon\\u202e"'


def test_failure_message_reads_the_stored_dict_form_with_hook_checks() -> None:
    stored = evaluate({"equals": "4"}, "5", None).to_dict()
    stored["checks"].append({"name": "custom", "passed": False, "expected": None, "detail": "said so"})
    assert format_failures(stored).splitlines() == [
        "2 of 2 checks failed:",
        '  ✗ equals \'4\': answer differs from character 0: "5"',
        "  ✗ custom: said so",
    ]


def test_passing_evaluation_has_no_failure_message() -> None:
    assert format_failures(evaluate({"contains": "Paris"}, PARIS, None)) == ""


def test_to_dict_is_the_evaluation_result_shape() -> None:
    evaluation = evaluate({"icontains": "paris", "min_tokens": 5}, PARIS, None)
    evaluation.judge = {"score": 8.0}
    assert evaluation.to_dict() == {
        "passed": False,
        "checks": [
            {"name": "icontains", "passed": True, "expected": "paris", "detail": ""},
            {"name": "min_tokens", "passed": False, "expected": 5,
             "detail": "completion token count unknown (no usage from the server)"},
        ],
        "judge": {"score": 8.0},
    }


def test_empty_expectation_passes_with_no_checks_and_no_score() -> None:
    evaluation = evaluate({}, "anything", None)
    assert evaluation.passed
    assert evaluation.checks == []
    assert evaluation.reasoning_score is None


def test_reasoning_score_is_key_concept_coverage_when_concepts_are_given() -> None:
    evaluation = evaluate({"key_concepts": ["capital", "France", "Seine", "Louvre"], "contains": "Paris"}, PARIS, None)
    assert evaluation.reasoning_score == 0.5
    assert evaluation.passed  # half the concepts is enough for the check


def test_reasoning_score_is_share_of_checks_passed_without_concepts() -> None:
    evaluation = evaluate({"contains": ["Paris", "Lyon", "France", "Nice"]}, PARIS, None)
    assert evaluation.reasoning_score == 0.5
    evaluation.checks.append(Check("judge", True, 5))
    assert evaluation.reasoning_score == 0.6


def test_key_concepts_below_half_fail_the_check() -> None:
    check = only_check({"key_concepts": ["capital", "Seine", "Louvre"]}, PARIS)
    assert (check.passed, check.detail.startswith("found 1 of 3")) == (False, True)


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


def test_json_schema_without_jsonschema_installed_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes `import jsonschema` raise ImportError
    check = only_check({"json_schema": SCHEMA}, JSON_ANSWER)
    assert not check.passed
    assert "pip install jsonschema" in check.detail


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
    assert (check.name, check.passed) == ("rubric", False)
    assert not needs_judge(expected)


def test_every_check_key_is_a_known_expectation() -> None:
    every = {key: None for key in KNOWN_KEYS}
    names = {check.name for check in evaluate(every, "", None).checks}
    assert names <= KNOWN_KEYS


def test_labels_name_the_check_and_its_expectation() -> None:
    assert [Check("answer", False, 42).label, Check("is_json", False, True).label,
            Check("contains_any", False, ["a", "b"]).label, Check("max_tokens", False, 9).label] == [
        "answer == 42", "is_json", "contains_any ['a', 'b']", "max_tokens <= 9"]


def test_evaluation_round_trips_through_its_dict_for_the_message() -> None:
    evaluation = Evaluation([Check("contains", False, "x", "not found")])
    assert format_failures(Evaluation.from_dict(evaluation.to_dict())) == format_failures(evaluation)
