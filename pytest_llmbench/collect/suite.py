"""Suite files: read, validate and turn into TestCases.

Every xdist worker loads the same file on its own, so loading is pure and deterministic. A broken
file must give one readable error that lists every problem (file, test index and id), never a
traceback, and a hostile file (huge, deeply nested, odd numbers) must fail fast instead of hanging.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks.expectations import misplaced_checks, problems_by_key
from ..checks.rerank import unknown_documents
from ..exceptions import SuiteError
from .case import TestCase
from .generated import clashing_ids, workload_cases
from .images import local_images
from .sections import BOOL, NAME, OBJECT, SECTIONS, STRING, Problems, Rule, describe, merged, section, short
from .suite_json import DEFAULT_MAX_BYTES, read_suite_json
from .tool_results import tool_results, tool_turns
from .workload.spec import Turn

__all__ = ["SUITE_SUFFIX", "Suite", "TestCase", "load_suite"]

SUITE_SUFFIX = ".llmbench.json"

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
    problems = Problems([])
    suite = _build_suite(path, data, problems)
    if suite is None:
        raise SuiteError(path, problems.lines)
    return suite


def dataset_suite(path: Path) -> dict[str, Any]:
    """A ``*.jsonl`` named as a suite: every record of it a test, its format guessed from its fields."""
    return {"test_suite_id": path.stem, "workload": {"type": "dataset", "path": path.name, "format": "auto"}}


_TEST_RULES: dict[str, Rule] = {
    **dict.fromkeys(("id", "name", "category"), NAME),
    **dict.fromkeys(("prompt", "reasoning_type", "description"), STRING),
    "stream": BOOL,
    "metadata": OBJECT,
    "api": (lambda v: v == "responses", '"responses" (chat and completions follow from \'messages\' and \'prompt\')'),
}
_MESSAGE_RULES: dict[str, Rule] = {
    "role": STRING,
    "content": (
        lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(p, dict) for p in v)),
        "a string or a list of content-part objects",
    ),
}
_TEST_FIELDS = (*_TEST_RULES, "messages", "input", "query", "documents", *SECTIONS, "turns", "think_time_s",
                "tool_results")
_REQUIRED_TEST_FIELDS = ("id", "name", "category")
_TOP_RULES: dict[str, Rule] = {
    "test_suite_id": NAME,
    "version": STRING,
    "description": STRING,
    "metadata": OBJECT,
}
_TOP_FIELDS = (*_TOP_RULES, "defaults", "tests", "workload")


def _messages(value: Any, problems: Problems) -> tuple[dict[str, Any], ...] | None:
    if not isinstance(value, list) or not value:
        problems.add(f"messages must be a non-empty list of objects, got {describe(value)}")
        return None
    before = len(problems.lines)
    for i, message in enumerate(value):
        label = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.add(f"{label} must be an object, got {describe(message)}")
            continue
        problems.require(message, _MESSAGE_RULES, f"{label}: ")
        problems.check_fields(message, _MESSAGE_RULES, f"{label}.")
    return tuple(copy.deepcopy(value)) if len(problems.lines) == before else None


MAX_INPUTS = 2048  # OpenAI's limit on one embeddings request's inputs


def embedding_input(raw: dict[str, Any], problems: Problems) -> str | tuple[str, ...] | None:
    """An embeddings test's ``input``: a non-empty text, or a list of 1 to MAX_INPUTS of them (a batch)."""
    value = raw["input"]
    if isinstance(value, str) and value:
        return value
    if (isinstance(value, list) and 0 < len(value) <= MAX_INPUTS
            and all(isinstance(item, str) and item for item in value)):
        return tuple(value)
    problems.add(f"input must be a non-empty string or a list of 1 to {MAX_INPUTS} non-empty strings, "
                 f"got {describe(value)}")
    return None


def rerank_fields(raw: dict[str, Any], problems: Problems) -> tuple[str, tuple[str, ...]] | None:
    """A rerank test's ``query`` (a non-empty text) and ``documents`` (1 to MAX_INPUTS non-empty texts)."""
    query, documents = raw.get("query"), raw.get("documents")
    if not (isinstance(query, str) and query):
        problems.add(f"query must be a non-empty string (a rerank test has 'query' and 'documents'), "
                     f"got {describe(query)}")
    if not (isinstance(documents, list) and 0 < len(documents) <= MAX_INPUTS
            and all(isinstance(item, str) and item for item in documents)):
        problems.add(f"documents must be a list of 1 to {MAX_INPUTS} non-empty strings, got {describe(documents)}")
        return None
    return (query, tuple(documents)) if isinstance(query, str) and query else None


def _defaults(top: dict[str, Any], problems: Problems) -> dict[str, dict[str, Any]]:
    """The suite's default parameters, expected and slo, keyed like SECTIONS."""
    raw = top.get("defaults", {})
    if not isinstance(raw, dict):
        problems.add(f"defaults must be an object, got {describe(raw)}")
        raw = {}
    problems.unknown_keys(raw, SECTIONS, prefix="defaults.")
    return {key: section(raw, key, problems, prefix="defaults.") for key in SECTIONS}


def _test_case(
    index: int, raw: Any, defaults: dict[str, dict[str, Any]], suite_id: str, problems: Problems, folder: Path
) -> TestCase | None:
    where = f"tests[{index}]"
    if not isinstance(raw, dict):
        problems.at(where).add(f"must be an object, got {describe(raw)}")
        return None
    if NAME[0](raw.get("id")):
        where += f" (id '{short(raw['id'])}')"
    here = problems.at(where)
    before = len(problems.lines)
    here.unknown_keys(raw, _TEST_FIELDS)
    here.require(raw, _REQUIRED_TEST_FIELDS)
    here.check_fields(raw, _TEST_RULES)
    has_prompt, has_messages = "prompt" in raw, "messages" in raw
    turns = _turns(raw, here) if "turns" in raw or "think_time_s" in raw else None
    inputs = embedding_input(raw, here) if "input" in raw else None
    ranked = rerank_fields(raw, here) if "query" in raw or "documents" in raw else None
    if "query" in raw or "documents" in raw:
        if has_prompt or has_messages or turns is not None or "input" in raw or "api" in raw:
            here.add("has 'query' and 'documents' beside 'prompt', 'messages', 'turns' or 'input': a rerank test "
                     "has 'query' and 'documents' alone")
    elif "input" in raw:
        if has_prompt or has_messages or turns is not None:
            here.add("has 'input' beside 'prompt', 'messages' or 'turns': an embeddings test has 'input' alone")
    elif turns is not None and has_prompt:
        here.add("has both 'prompt' and 'turns': a conversation is chat; put earlier turns in 'messages'")
    elif turns is None and has_prompt == has_messages:
        which = "has both 'prompt' and" if has_prompt else "missing 'prompt' or"
        here.add(f"{which} 'messages': give exactly one ('prompt' for /completions, 'messages' for chat, "
                 f"'input' for /embeddings, 'query' and 'documents' for /rerank)")
    messages = _messages(raw["messages"], here) if has_messages else None
    if messages is not None:
        messages = local_images(messages, folder, here)
    own = {key: section(raw, key, here) for key in SECTIONS}
    if len(problems.lines) > before:
        return None
    expected = merged(defaults, own, "expected")
    api = "embeddings" if "input" in raw else "rerank" if ranked else "text"
    for problem in misplaced_checks(expected, api=api) or (unknown_documents(expected, ranked[1]) if ranked else []):
        here.add(problem)
    if len(problems.lines) > before:
        return None
    if defaults["expected"] and own["expected"]:  # each half was valid alone; together they may clash (min > max)
        for field, problem in problems_by_key(expected).items():
            here.add(f"expected.{field} (with the suite's defaults): {problem}")
        if len(problems.lines) > before:
            return None
    parameters = merged(defaults, own, "parameters")
    if "tool_results" in raw:
        results = tool_results(raw, parameters, expected, here)
        if results is None or len(problems.lines) > before:
            return None
        turns, expected = tool_turns(results, expected), {}
    return TestCase(
        id=raw["id"],
        name=raw["name"],
        category=raw["category"],
        prompt=raw.get("prompt"),
        messages=messages if turns is None else messages or (),
        parameters=parameters,
        reasoning_type=raw.get("reasoning_type"),
        stream=raw.get("stream"),
        expected=expected or None,
        slo=merged(defaults, own, "slo") or None,
        index=index,
        suite_id=suite_id,
        description=raw.get("description"),
        metadata=copy.deepcopy(raw.get("metadata")),
        turns=turns,
        think_time_s=raw.get("think_time_s", 0.0),
        input=inputs,
        api=raw.get("api"),
        query=ranked[0] if ranked else None,
        documents=ranked[1] if ranked else None,
    )


def _turns(raw: dict[str, Any], problems: Problems) -> tuple[Turn, ...] | None:
    """A conversation's user turns: texts, or {"content", "expected", "slo"} objects with checks of their own."""
    value = raw.get("turns")
    think = raw.get("think_time_s", 0.0)
    if not (isinstance(think, (int, float)) and not isinstance(think, bool) and think >= 0):
        problems.add(f"think_time_s must be a number of seconds >= 0, got {describe(think)}")
    if not isinstance(value, list) or not value:
        problems.add(f"turns must be a non-empty list of user turns, got {describe(value)}")
        return None
    turns = []
    for n, turn in enumerate(value):
        if isinstance(turn, str) and turn.strip():
            turns.append(Turn(turn))
        elif isinstance(turn, dict) and isinstance(turn.get("content"), str) and turn["content"].strip():
            problems.unknown_keys(turn, ("content", "expected", "slo"), prefix=f"turns[{n}].")
            sections = {key: section(turn, key, problems, prefix=f"turns[{n}].") for key in ("expected", "slo")}
            turns.append(Turn(turn["content"], sections["expected"] or None, sections["slo"] or None))
        else:
            problems.add(f"turns[{n}] must be a non-empty text or an object with a 'content' text, got "
                         f"{describe(turn)}")
    return tuple(turns)


def _default_suite_id(path: Path) -> str:
    for suffix in (SUITE_SUFFIX, ".json"):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _duplicate_ids(tests: list[Any], problems: Problems) -> None:
    first_index: dict[str, int] = {}
    for index, raw in enumerate(tests):
        test_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(test_id, str) or not NAME[0](test_id):
            continue
        if test_id in first_index:
            where = f"tests[{index}] (id '{short(test_id)}')"
            problems.add(f"{where}: duplicate id, also used by tests[{first_index[test_id]}]")
        else:
            first_index[test_id] = index


def _build_suite(path: Path, top: Any, problems: Problems) -> Suite | None:
    if not isinstance(top, dict):
        problems.add(f'top level must be a JSON object with a "tests" list, got {describe(top)}')
        return None
    problems.unknown_keys(top, _TOP_FIELDS)
    problems.check_fields(top, _TOP_RULES)
    suite_id = top["test_suite_id"] if NAME[0](top.get("test_suite_id")) else _default_suite_id(path)
    defaults = _defaults(top, problems)
    tests = top.get("tests", [] if "workload" in top else None)
    if not isinstance(tests, list) or (not tests and "workload" not in top):
        shown = "nothing" if "tests" not in top else describe(tests)
        problems.add(f"tests must be a non-empty list of test objects, got {shown} (or give a workload)")
        return None
    cases = [_test_case(i, raw, defaults, suite_id, problems, path.parent) for i, raw in enumerate(tests)]
    _duplicate_ids(tests, problems)
    if "workload" in top:
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

