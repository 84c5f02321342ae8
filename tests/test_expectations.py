from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_llmbench.checks.expectations import expectation_problems, regex_flags


def test_a_complete_valid_expectation_has_no_problems() -> None:
    expected = {
        "contains": ["a", "b"], "icontains": "c", "not_contains": "d", "contains_any": ["e"], "regex": r"\d+",
        "regex_flags": "IM", "equals": 4, "starts_with": "The", "is_json": True, "json_schema": {"type": "object"},
        "min_length": 1, "max_length": 10, "min_tokens": 0, "max_tokens": 10, "answer": "42",
        "answer_tolerance": 0.5, "key_concepts": ["x"], "rubric": "Is polite.", "rubric_min_score": 7,
    }
    assert expectation_problems(expected) == []


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        ({"contains": 5}, "contains: must be a string or a non-empty list of strings, not a number"),
        ({"contains_any": []}, "contains_any: must be a string or a non-empty list of strings, not a list"),
        ({"not_contains": ["x", ""]}, "not_contains: holds an empty string, which every answer contains"),
        ({"regex": "(a"}, "regex: pattern '(a' does not compile: missing ) at position 2"),
        ({"regex": "a", "regex_flags": 3}, 'regex_flags: must be a string like "IM" or a list of flag names, not a number'),
        ({"regex_flags": ["MULTILINE", "NOPE"]}, "regex_flags: unknown flag 'NOPE' (use I, M, S, X, A or IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII)"),
        ({"equals": None}, "equals: must be a string or a number, not null"),
        ({"starts_with": "  "}, "starts_with: must be a non-empty string, not '  '"),
        ({"is_json": "yes"}, "is_json: must be true or false, not 'yes'"),
        ({"json_schema": "object"}, "json_schema: must be a JSON Schema object, not a string"),
        ({"json_schema": {"type": 5}}, "json_schema: is not a valid JSON Schema: 5 is not valid under any of the given schemas"),
        ({"min_length": -1}, "min_length: must be a whole number >= 0, not -1"),
        ({"max_tokens": True}, "max_tokens: must be a whole number >= 0, not True"),
        ({"min_length": 10, "max_length": 5}, "max_length: 5 is below min_length 10"),
        ({"min_tokens": 10, "max_tokens": 5}, "max_tokens: 5 is below min_tokens 10"),
        ({"answer": ""}, "answer: must be a non-empty string or a number, not ''"),
        ({"answer": 1, "answer_tolerance": "0.1"}, "answer_tolerance: must be a number >= 0, not '0.1'"),
        ({"rubric": "ok", "rubric_min_score": 11}, "rubric_min_score: must be a number from 0 to 10, not 11"),
        ({"contians": "x"}, "contians: unknown expectation (did you mean 'contains'?)"),
        ({"zzz": 1}, "zzz: unknown expectation"),
    ],
)
def test_problem_names_the_key_and_what_is_wrong(expected: dict[str, Any], problem: str) -> None:
    assert expectation_problems(expected) == [problem]


def test_expected_that_is_not_an_object_is_one_problem() -> None:
    assert expectation_problems(["contains"]) == ["expected must be an object, not a list"]  # type: ignore[arg-type]


def test_modifier_without_its_check_is_fine_because_suite_defaults_merge_in() -> None:
    assert expectation_problems({"regex_flags": "I", "answer_tolerance": 0.1, "rubric_min_score": 6}) == []


@pytest.mark.parametrize(
    ("spec", "flags"),
    [
        (None, 0),
        ("", 0),
        ("I", re.IGNORECASE),
        ("ims", re.IGNORECASE | re.MULTILINE | re.DOTALL),
        ("IGNORECASE", re.IGNORECASE),
        ("re.DOTALL", re.DOTALL),
        (["IGNORECASE", "m", "X"], re.IGNORECASE | re.MULTILINE | re.VERBOSE),
        ("I, M", re.IGNORECASE | re.MULTILINE),
        ("Multiline,IgnoreCase", re.MULTILINE | re.IGNORECASE),
        ("re.I|re.M", re.IGNORECASE | re.MULTILINE),
        ("DOTALL im", re.DOTALL | re.IGNORECASE | re.MULTILINE),
        (["MULTILINE|S"], re.MULTILINE | re.DOTALL),
    ],
)
def test_regex_flags_accept_letters_and_names(spec: Any, flags: int) -> None:
    assert regex_flags(spec) == flags


@pytest.mark.parametrize(("spec", "token"), [("Multiline,IgnoreCase,Verbos", "Verbos"), ("IQ", "IQ"), ("re.", "re.")])
def test_unknown_flag_is_named_as_written_between_separators(spec: str, token: str) -> None:
    with pytest.raises(ValueError, match=f"^unknown flag {re.escape(repr(token))} "):
        regex_flags(spec)
