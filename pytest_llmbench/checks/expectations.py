"""Validate a test's `expected` block before any answer is checked against it.

A typo in a key or a regex that does not compile should stop a suite at load time with a clear
message, not pass every test silently or fail each one for a reason that has nothing to do with
the model.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

from .rerank import RERANK_KEYS, RERANK_VALIDATORS
from .schema import NOT_A_SCHEMA, schema_problem
from .tool_calls import expected_calls_problem, order_problem

_FLAGS = {
    "I": re.IGNORECASE,
    "IGNORECASE": re.IGNORECASE,
    "M": re.MULTILINE,
    "MULTILINE": re.MULTILINE,
    "S": re.DOTALL,
    "DOTALL": re.DOTALL,
    "X": re.VERBOSE,
    "VERBOSE": re.VERBOSE,
    "A": re.ASCII,
    "ASCII": re.ASCII,
}

_FLAG_SEPARATORS = re.compile(r"[\s,|]+")
_FLAG_HINT = "use I, M, S, X, A or IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII"


def regex_flags(spec: Any) -> int:
    """`"IM"`, `"IGNORECASE"`, `"Multiline,IgnoreCase"`, `"re.I|re.M"` or `["IGNORECASE", "M"]` as re
    flags; raises ValueError.

    Each token between separators (commas, spaces, `|`) is a full flag name or a run of flag letters,
    so an unknown token is named whole rather than by its first letter that is not a flag.
    """
    if spec is None:
        return 0
    if isinstance(spec, str):
        spec = [spec]
    elif not (isinstance(spec, list) and all(isinstance(name, str) for name in spec)):
        raise ValueError(f'must be a string like "IM" or a list of flag names, not {_json_type(spec)}')
    flags = 0
    for token in (token for item in spec for token in _FLAG_SEPARATORS.split(item) if token):
        key = token.upper().removeprefix("RE.")
        if key in _FLAGS:
            flags |= _FLAGS[key]
        elif key and all(letter in _FLAGS for letter in key):
            for letter in key:
                flags |= _FLAGS[letter]
        else:
            raise ValueError(f"unknown flag {token!r} ({_FLAG_HINT})")
    return flags


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need_strings(value: Any) -> str | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        return f"must be a string or a non-empty list of strings, not {_json_type(value)}"
    if not all(items):
        return "holds an empty string, which every answer contains"
    return None


def _need_count(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return f"must be a whole number >= 0, not {value!r}"


def _need_text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"must be a non-empty string, not {value!r}"


def _need_equals(value: Any) -> str | None:
    if isinstance(value, str) or _is_number(value):
        return None
    return f"must be a string or a number, not {_json_type(value)}"


def _need_answer(value: Any) -> str | None:
    if _is_number(value) or (isinstance(value, str) and value.strip()):
        return None
    return f"must be a non-empty string or a number, not {value!r}"


def _need_boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {value!r}"


def _need_tolerance(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else f"must be a number >= 0, not {value!r}"


def _need_judge_score(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value <= 10 else f"must be a number from 0 to 10, not {value!r}"


def _need_flags(value: Any) -> str | None:
    try:
        regex_flags(value)
    except ValueError as error:
        return str(error)
    return None


def _need_schema(value: Any) -> str | None:
    problem = schema_problem(value)
    return f"{problem}, not {_json_type(value)}" if problem == NOT_A_SCHEMA else problem


# What `expected.reasoning` may check on the thinking text: the checks of text (not of tokens, judge or format).
REASONING_KEYS = frozenset({"contains", "icontains", "not_contains", "contains_any", "regex", "regex_flags",
                            "min_length", "max_length", "key_concepts"})


def _need_reasoning(value: Any) -> str | None:
    if not isinstance(value, dict) or not value:
        return f'must be a non-empty object of checks on the reasoning text, e.g. {{"contains": "step"}}, ' \
               f"not {_json_type(value)}"
    other = sorted(set(value) - REASONING_KEYS)
    if other:
        return f"{other[0]!r} does not check reasoning text (these do: {', '.join(sorted(REASONING_KEYS))})"
    problem = next(iter(problems_by_key(value).items()), None)
    return None if problem is None else f"{problem[0]}: {problem[1]}"


# Checks on an embeddings test's vectors (checks/embeddings.py runs them).
def _cosine_limit(name: str) -> Callable[[Any], str | None]:
    def need(value: Any) -> str | None:
        limit = value.get(name) if isinstance(value, dict) else None
        if not (isinstance(value, dict) and isinstance(value.get("text"), str) and value["text"]
                and isinstance(limit, (int, float)) and not isinstance(limit, bool) and -1 <= limit <= 1
                and set(value) == {"text", name}):
            return f'must be {{"text": "...", "{name}": a number from -1 to 1}}'
        return None
    return need


def _need_dimensions(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a whole number of dimensions above 0"


EMBEDDING_VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "dimensions": _need_dimensions,
    "normalized": _need_boolean,
    "similar_to": _cosine_limit("min_cosine"),
    "dissimilar_to": _cosine_limit("max_cosine"),
}
EMBEDDING_KEYS = frozenset(EMBEDDING_VALIDATORS)


# The APIs whose tests check something other than an answer's text: their keys, and what each reads.
_OWN_KEYS = {"embeddings": EMBEDDING_KEYS, "rerank": RERANK_KEYS}
_WHAT = {"text": "an answer's text", "embeddings": "embeddings", "rerank": "a rerank ranking"}
_CHECKS_OF = {"embeddings": "its vectors", "rerank": "its ranking"}
_FIELDS_OF = {"embeddings": "'input'", "rerank": "'query' and 'documents'"}


def misplaced_checks(expected: dict[str, Any], *, api: str) -> list[str]:
    """Checks that cannot apply to the test's API (``api_type``): text checks on vectors, vector checks on text..."""
    problems = []
    for key in sorted(expected):
        owner = next((name for name, keys in _OWN_KEYS.items() if key in keys), "text")
        if owner == api or (owner == "text" and api not in _OWN_KEYS):
            continue
        if api in _OWN_KEYS:
            article = "an" if api[0] in "aeiou" else "a"
            problems.append(f"expected.{key} checks {_WHAT[owner]}; {article} {api} test checks {_CHECKS_OF[api]} "
                            f"({', '.join(sorted(_OWN_KEYS[api]))})")
        else:
            problems.append(f"expected.{key} checks {_WHAT[owner]}; this test has no {_FIELDS_OF[owner]}")
    return problems


_VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "contains": _need_strings,
    "icontains": _need_strings,
    "not_contains": _need_strings,
    "contains_any": _need_strings,
    "regex": _need_strings,
    "regex_flags": _need_flags,
    "equals": _need_equals,
    "starts_with": _need_text,
    "is_json": _need_boolean,
    "json_schema": _need_schema,
    "min_length": _need_count,
    "max_length": _need_count,
    "min_tokens": _need_count,
    "max_tokens": _need_count,
    "answer": _need_answer,
    "answer_tolerance": _need_tolerance,
    "key_concepts": _need_strings,
    "rubric": _need_text,
    "rubric_min_score": _need_judge_score,
    "reasoning": _need_reasoning,
    **EMBEDDING_VALIDATORS,
    **RERANK_VALIDATORS,
    "tool_calls": expected_calls_problem,
    "tool_calls_order": order_problem,
}
KNOWN_KEYS = frozenset(_VALIDATORS)
def problems_by_key(expected: dict[str, Any]) -> dict[str, str]:
    """Each key's problem, shallow (types) and deep (patterns compile, min <= max, schema is valid)."""
    problems: dict[str, str] = {}
    for key, value in expected.items():
        if key in _VALIDATORS:
            problem = _VALIDATORS[key](value)
        else:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            problem = "unknown expectation" + (f" (did you mean {close[0]!r}?)" if close else "")
        if problem:
            problems[key] = problem
    if "regex" in expected and not {"regex", "regex_flags"} & problems.keys():
        import regex  # here: loading it costs every run 5 ms, and only suites with a regex check need it

        flags = regex_flags(expected.get("regex_flags"))
        for pattern in [expected["regex"]] if isinstance(expected["regex"], str) else expected["regex"]:
            try:
                regex.compile(pattern, flags)  # the engine the check runs with (re-compatible, time-limited)
            except regex.error as error:
                problems["regex"] = f"pattern {pattern!r} does not compile: {error}"
                break
    for low, high in (("min_length", "max_length"), ("min_tokens", "max_tokens")):
        if (low in expected and high in expected and not {low, high} & problems.keys()
                and expected[low] > expected[high]):
            problems[high] = f"{expected[high]} is below {low} {expected[low]}"
    return problems


def expectation_problems(expected: dict[str, Any]) -> list[str]:
    """Readable problems of an `expected` block ("regex: pattern '(' does not compile: ..."), [] if none."""
    if not isinstance(expected, dict):
        return [f"expected must be an object, not {_json_type(expected)}"]
    return [f"{key}: {problem}" for key, problem in problems_by_key(expected).items()]
