"""Checking a suite's fields: the rules, the sections every test and workload share (parameters, expected, slo),
and the list of problems each message of which says where it was found.

Shared by suite.py (hand-written tests) and generated.py (a workload's tests), so that both fail alike.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..checks.expectations import KNOWN_KEYS, problems_by_key
from ..checks.tool_calls import tools_problem
from ..metrics.slo import TEST_SLO_KEYS

Rule = tuple[Callable[[Any], bool], str]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


STRING: Rule = (lambda v: isinstance(v, str), "a string")
NAME: Rule = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
_STRINGS: Rule = (
    lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v)),
    "a string or a list of strings",
)
OBJECT: Rule = (lambda v: isinstance(v, dict), "an object")
BOOL: Rule = (lambda v: isinstance(v, bool), "true or false")
_NUMBER: Rule = (_is_number, "a number")
_NON_NEGATIVE: Rule = (lambda v: _is_number(v) and v >= 0, "a number >= 0")
_POSITIVE: Rule = (lambda v: _is_number(v) and v > 0, "a positive number")
_POSITIVE_INT: Rule = (lambda v: _is_int(v) and v > 0, "a positive integer")

_PARAMETER_RULES: dict[str, Rule] = {
    "max_tokens": _POSITIVE_INT,
    "temperature": _NON_NEGATIVE,
    "top_p": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "stop": _STRINGS,
    "seed": (_is_int, "an integer"),
    "n": _POSITIVE_INT,
    "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER,
}
# Sampling parameters of OpenAI's and vLLM's completion APIs: a name one slip away from one of these is a typo
# (sent as it is, the server ignores it and the test passes with the default); any other name passes through.
KNOWN_PARAMETERS = (
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stop", "seed",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "length_penalty", "logprobs", "top_logprobs",
    "prompt_logprobs", "logit_bias", "user", "response_format", "tools", "tool_choice", "parallel_tool_calls",
    "ignore_eos", "min_tokens", "best_of", "use_beam_search", "stop_token_ids", "include_stop_str_in_output",
    "skip_special_tokens", "spaces_between_special_tokens", "echo", "suffix", "guided_json", "guided_regex",
    "guided_choice", "guided_grammar", "bad_words", "allowed_token_ids", "truncate_prompt_tokens",
    "reasoning_effort", "structured_outputs", "dimensions", "encoding_format",
)


def _near_miss(key: str) -> str | None:
    if key in KNOWN_PARAMETERS:
        return None
    close = difflib.get_close_matches(key, KNOWN_PARAMETERS, n=1, cutoff=0.85)
    return close[0] if close else None


_SLO_RULES: dict[str, Rule] = dict.fromkeys(TEST_SLO_KEYS, _POSITIVE)
_EXPECTED_KEYS = sorted(KNOWN_KEYS)
SECTIONS = ("parameters", "expected", "slo")
_JSON_TYPES = {
    type(None): "null", bool: "boolean", int: "integer", float: "number",
    str: "string", list: "array", dict: "object",
}  # fmt: skip


def _json_type(value: Any) -> str:
    return _JSON_TYPES[type(value)]


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return _json_type(value)
    return f"{_json_type(value)} {short(json.dumps(value, ensure_ascii=False))}"


@dataclass
class Problems:
    """Collects every problem of a file, each prefixed with where it was found."""

    lines: list[str]
    where: str = ""

    def at(self, where: str) -> Problems:
        return Problems(self.lines, where)

    def add(self, message: str) -> None:
        self.lines.append(f"{self.where}: {message}" if self.where else message)

    def check(self, value: Any, rule: Rule, name: str) -> None:
        if not rule[0](value):
            self.add(f"{name} must be {rule[1]}, got {describe(value)}")

    def require(self, obj: dict[str, Any], fields: Iterable[str], label: str = "") -> None:
        for field in fields:
            if field not in obj:
                self.add(f"{label}missing required field '{field}'")

    def check_fields(self, obj: dict[str, Any], rules: dict[str, Rule], prefix: str = "") -> None:
        for field, rule in rules.items():
            if field in obj:
                self.check(obj[field], rule, prefix + field)

    def unknown_keys(self, obj: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
        allowed = list(allowed)
        for key in obj:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
                self.add(f"unknown field '{prefix}{short(key)}' ({hint})")


def section(owner: dict[str, Any], key: str, problems: Problems, prefix: str = "") -> dict[str, Any]:
    """Validate the optional object owner[key]; a private deep copy, or {} when absent or invalid."""
    if key not in owner:
        return {}
    value, name = owner[key], prefix + key
    if not isinstance(value, dict):
        problems.add(f"{name} must be an object, got {describe(value)}")
        return {}
    if key == "parameters":
        if "stream" in value:
            problems.add(f"{name}.stream is not allowed: set the test's \"stream\" field instead")
        problems.check_fields(value, _PARAMETER_RULES, prefix=f"{name}.")
        if "tools" in value and (problem := tools_problem(value["tools"])):
            problems.add(f"{name}.tools: {problem}")
        for key in value:
            meant = _near_miss(key)
            if meant:
                problems.add(f"unknown parameter '{name}.{short(key)}' (did you mean '{meant}'? other names are "
                             "sent as they are)")
    elif key == "expected":  # evaluate's own rules, so that load time and check time agree
        problems.unknown_keys(value, _EXPECTED_KEYS, prefix=f"{name}.")
        for field, problem in problems_by_key(value).items():
            if field in KNOWN_KEYS:
                problems.add(f"{name}.{field}: {problem}")
    else:
        problems.unknown_keys(value, _SLO_RULES, prefix=f"{name}.")
        problems.check_fields(value, _SLO_RULES, prefix=f"{name}.")
    return copy.deepcopy(value)


def merged(defaults: dict[str, dict[str, Any]], own: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """Test values win; the defaults are copied so that no two tests share a mutable dict."""
    return {**copy.deepcopy(defaults[key]), **own[key]}
