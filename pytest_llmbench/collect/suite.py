"""Suite files: read, validate and turn into TestCases.

Every xdist worker loads the same file on its own, so loading is pure and deterministic. A broken
file must give one readable error that lists every problem (file, test index and id), never a
traceback, and a hostile file (huge, deeply nested, odd numbers) must fail fast instead of hanging.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks.expectations import KNOWN_KEYS, problems_by_key
from ..exceptions import SuiteError
from ..metrics.slo import TEST_SLO_KEYS
from .suite_json import DEFAULT_MAX_BYTES, read_suite_json
from .workload.spec import Shape, Turn

SUITE_SUFFIX = ".llmbench.json"

@dataclass(frozen=True)
class TestCase:
    """One prompt to send; defaults are already merged in, so consumers never look at the suite."""

    __test__ = False  # keep pytest from collecting this class

    id: str
    name: str
    category: str
    prompt: str | None
    messages: tuple[dict[str, Any], ...] | None
    parameters: dict[str, Any]
    reasoning_type: str | None = None
    stream: bool | None = None  # per-test override of --llmbench-stream
    expected: dict[str, Any] | None = None
    slo: dict[str, Any] | None = None
    index: int = 0
    suite_id: str = ""
    description: str | None = None
    metadata: dict[str, Any] | None = None
    shape: Shape | None = None  # a generated request: its prompt is built to these token counts when sent
    turns: tuple[Turn, ...] | None = None  # a conversation: user turns sent one after another, answers kept
    think_time_s: float = 0.0  # between a turn's answer and the next turn
    send_at_s: float | None = None  # a trace's send time, seconds from the replay's start

    @property
    def api_type(self) -> str:
        return "chat" if self.messages is not None else "completions"


@dataclass(frozen=True)
class Suite:
    path: Path
    test_suite_id: str
    version: str | None
    description: str | None
    tests: tuple[TestCase, ...]


def load_suite(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Suite:
    """Read and validate one suite file; raises SuiteError naming every problem found."""
    path = Path(path)
    data = dataset_suite(path) if path.suffix == ".jsonl" else read_suite_json(path, max_bytes)
    problems = _Problems([])
    suite = _build_suite(path, data, problems)
    if suite is None:
        raise SuiteError(path, problems.lines)
    return suite


def dataset_suite(path: Path) -> dict[str, Any]:
    """A ``*.jsonl`` named as a suite: every record of it a test, its format guessed from its fields."""
    return {"test_suite_id": path.stem, "workload": {"type": "dataset", "path": path.name, "format": "auto"}}


Rule = tuple[Callable[[Any], bool], str]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STRING: Rule = (lambda v: isinstance(v, str), "a string")
_NAME: Rule = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
_STRINGS: Rule = (
    lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v)),
    "a string or a list of strings",
)
_OBJECT: Rule = (lambda v: isinstance(v, dict), "an object")
_BOOL: Rule = (lambda v: isinstance(v, bool), "true or false")
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
    "reasoning_effort", "structured_outputs",
)


def _near_miss(key: str) -> str | None:
    if key in KNOWN_PARAMETERS:
        return None
    close = difflib.get_close_matches(key, KNOWN_PARAMETERS, n=1, cutoff=0.85)
    return close[0] if close else None


_SLO_RULES: dict[str, Rule] = dict.fromkeys(TEST_SLO_KEYS, _POSITIVE)
_EXPECTED_KEYS = sorted(KNOWN_KEYS)
_TEST_RULES: dict[str, Rule] = {
    **dict.fromkeys(("id", "name", "category"), _NAME),
    **dict.fromkeys(("prompt", "reasoning_type", "description"), _STRING),
    "stream": _BOOL,
    "metadata": _OBJECT,
}
_MESSAGE_RULES: dict[str, Rule] = {
    "role": _STRING,
    "content": (
        lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(p, dict) for p in v)),
        "a string or a list of content-part objects",
    ),
}
_SECTIONS = ("parameters", "expected", "slo")
_TEST_FIELDS = (*_TEST_RULES, "messages", *_SECTIONS, "turns", "think_time_s")
_REQUIRED_TEST_FIELDS = ("id", "name", "category")
_TOP_RULES: dict[str, Rule] = {
    "test_suite_id": _NAME,
    "version": _STRING,
    "description": _STRING,
    "metadata": _OBJECT,
}
_TOP_FIELDS = (*_TOP_RULES, "defaults", "tests", "workload")
_JSON_TYPES = {
    type(None): "null", bool: "boolean", int: "integer", float: "number",
    str: "string", list: "array", dict: "object",
}  # fmt: skip


def _json_type(value: Any) -> str:
    return _JSON_TYPES[type(value)]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return _json_type(value)
    return f"{_json_type(value)} {_short(json.dumps(value, ensure_ascii=False))}"


@dataclass
class _Problems:
    """Collects every problem of a file, each prefixed with where it was found."""

    lines: list[str]
    where: str = ""

    def at(self, where: str) -> _Problems:
        return _Problems(self.lines, where)

    def add(self, message: str) -> None:
        self.lines.append(f"{self.where}: {message}" if self.where else message)

    def check(self, value: Any, rule: Rule, name: str) -> None:
        if not rule[0](value):
            self.add(f"{name} must be {rule[1]}, got {_describe(value)}")

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
                self.add(f"unknown field '{prefix}{_short(key)}' ({hint})")


def _section(owner: dict[str, Any], key: str, problems: _Problems, prefix: str = "") -> dict[str, Any]:
    """Validate the optional object owner[key]; a private deep copy, or {} when absent or invalid."""
    if key not in owner:
        return {}
    value, name = owner[key], prefix + key
    if not isinstance(value, dict):
        problems.add(f"{name} must be an object, got {_describe(value)}")
        return {}
    if key == "parameters":
        if "stream" in value:
            problems.add(f"{name}.stream is not allowed: set the test's \"stream\" field instead")
        problems.check_fields(value, _PARAMETER_RULES, prefix=f"{name}.")
        for key in value:
            meant = _near_miss(key)
            if meant:
                problems.add(f"unknown parameter '{name}.{_short(key)}' (did you mean '{meant}'? other names are "
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


def _messages(value: Any, problems: _Problems) -> tuple[dict[str, Any], ...] | None:
    if not isinstance(value, list) or not value:
        problems.add(f"messages must be a non-empty list of objects, got {_describe(value)}")
        return None
    before = len(problems.lines)
    for i, message in enumerate(value):
        label = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.add(f"{label} must be an object, got {_describe(message)}")
            continue
        problems.require(message, _MESSAGE_RULES, f"{label}: ")
        problems.check_fields(message, _MESSAGE_RULES, f"{label}.")
    return tuple(copy.deepcopy(value)) if len(problems.lines) == before else None


def _defaults(top: dict[str, Any], problems: _Problems) -> dict[str, dict[str, Any]]:
    """The suite's default parameters, expected and slo, keyed like _SECTIONS."""
    raw = top.get("defaults", {})
    if not isinstance(raw, dict):
        problems.add(f"defaults must be an object, got {_describe(raw)}")
        raw = {}
    problems.unknown_keys(raw, _SECTIONS, prefix="defaults.")
    return {key: _section(raw, key, problems, prefix="defaults.") for key in _SECTIONS}


def _merged(defaults: dict[str, dict[str, Any]], own: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """Test values win; the defaults are copied so that no two tests share a mutable dict."""
    return {**copy.deepcopy(defaults[key]), **own[key]}


def _test_case(
    index: int, raw: Any, defaults: dict[str, dict[str, Any]], suite_id: str, problems: _Problems
) -> TestCase | None:
    where = f"tests[{index}]"
    if not isinstance(raw, dict):
        problems.at(where).add(f"must be an object, got {_describe(raw)}")
        return None
    if _NAME[0](raw.get("id")):
        where += f" (id '{_short(raw['id'])}')"
    here = problems.at(where)
    before = len(problems.lines)
    here.unknown_keys(raw, _TEST_FIELDS)
    here.require(raw, _REQUIRED_TEST_FIELDS)
    here.check_fields(raw, _TEST_RULES)
    has_prompt, has_messages = "prompt" in raw, "messages" in raw
    turns = _turns(raw, here) if "turns" in raw or "think_time_s" in raw else None
    if turns is not None and has_prompt:
        here.add("has both 'prompt' and 'turns': a conversation is chat; put earlier turns in 'messages'")
    elif turns is None and has_prompt == has_messages:
        which = "has both 'prompt' and" if has_prompt else "missing 'prompt' or"
        here.add(f"{which} 'messages': give exactly one ('prompt' for /completions, 'messages' for chat)")
    messages = _messages(raw["messages"], here) if has_messages else None
    own = {key: _section(raw, key, here) for key in _SECTIONS}
    if len(problems.lines) > before:
        return None
    expected = _merged(defaults, own, "expected")
    if defaults["expected"] and own["expected"]:  # each half was valid alone; together they may clash (min > max)
        for field, problem in problems_by_key(expected).items():
            here.add(f"expected.{field} (with the suite's defaults): {problem}")
        if len(problems.lines) > before:
            return None
    return TestCase(
        id=raw["id"],
        name=raw["name"],
        category=raw["category"],
        prompt=raw.get("prompt"),
        messages=messages if turns is None else messages or (),
        parameters=_merged(defaults, own, "parameters"),
        reasoning_type=raw.get("reasoning_type"),
        stream=raw.get("stream"),
        expected=expected or None,
        slo=_merged(defaults, own, "slo") or None,
        index=index,
        suite_id=suite_id,
        description=raw.get("description"),
        metadata=copy.deepcopy(raw.get("metadata")),
        turns=turns,
        think_time_s=raw.get("think_time_s", 0.0),
    )


def _turns(raw: dict[str, Any], problems: _Problems) -> tuple[Turn, ...] | None:
    """A conversation's user turns: texts, or {"content", "expected", "slo"} objects with checks of their own."""
    value = raw.get("turns")
    think = raw.get("think_time_s", 0.0)
    if not (isinstance(think, (int, float)) and not isinstance(think, bool) and think >= 0):
        problems.add(f"think_time_s must be a number of seconds >= 0, got {_describe(think)}")
    if not isinstance(value, list) or not value:
        problems.add(f"turns must be a non-empty list of user turns, got {_describe(value)}")
        return None
    turns = []
    for n, turn in enumerate(value):
        if isinstance(turn, str) and turn.strip():
            turns.append(Turn(turn))
        elif isinstance(turn, dict) and isinstance(turn.get("content"), str) and turn["content"].strip():
            problems.unknown_keys(turn, ("content", "expected", "slo"), prefix=f"turns[{n}].")
            sections = {key: _section(turn, key, problems, prefix=f"turns[{n}].") for key in ("expected", "slo")}
            turns.append(Turn(turn["content"], sections["expected"] or None, sections["slo"] or None))
        else:
            problems.add(f"turns[{n}] must be a non-empty text or an object with a 'content' text, got "
                         f"{_describe(turn)}")
    return tuple(turns)


def _default_suite_id(path: Path) -> str:
    for suffix in (SUITE_SUFFIX, ".json"):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _duplicate_ids(tests: list[Any], problems: _Problems) -> None:
    first_index: dict[str, int] = {}
    for index, raw in enumerate(tests):
        test_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(test_id, str) or not _NAME[0](test_id):
            continue
        if test_id in first_index:
            where = f"tests[{index}] (id '{_short(test_id)}')"
            problems.add(f"{where}: duplicate id, also used by tests[{first_index[test_id]}]")
        else:
            first_index[test_id] = index


def _build_suite(path: Path, top: Any, problems: _Problems) -> Suite | None:
    if not isinstance(top, dict):
        problems.add(f'top level must be a JSON object with a "tests" list, got {_describe(top)}')
        return None
    problems.unknown_keys(top, _TOP_FIELDS)
    problems.check_fields(top, _TOP_RULES)
    suite_id = top["test_suite_id"] if _NAME[0](top.get("test_suite_id")) else _default_suite_id(path)
    defaults = _defaults(top, problems)
    tests = top.get("tests", [] if "workload" in top else None)
    if not isinstance(tests, list) or (not tests and "workload" not in top):
        shown = "nothing" if "tests" not in top else _describe(tests)
        problems.add(f"tests must be a non-empty list of test objects, got {shown} (or give a workload)")
        return None
    cases = [_test_case(i, raw, defaults, suite_id, problems) for i, raw in enumerate(tests)]
    _duplicate_ids(tests, problems)
    if "workload" in top:
        from .generated import clashing_ids, workload_cases

        cases += workload_cases(path, top["workload"], defaults, suite_id, len(cases), problems)
        clashing_ids(cases, problems)
    if problems.lines:
        return None
    return Suite(
        path=path,
        test_suite_id=suite_id,
        version=top.get("version"),
        description=top.get("description"),
        tests=tuple(case for case in cases if case is not None),
    )

