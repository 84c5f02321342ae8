"""Check the functions an answer called against ``expected.tool_calls``.

Three things break silently when a model or server changes: the function called (its name, in order, or as a set
with ``"tool_calls_order": "any"``), arguments that are not JSON or do not fit the tool's own JSON Schema (the
request's ``tools``), and the argument values the test cares about (a partial match: only the keys given).
A test's scripted ``tool_results`` answer the calls made (``pair_results``), so that the conversation can go on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..textsafe import excerpt
from .check import Check, show
from .schema import schema_problem, schema_violation

ORDERS = ("given", "any")


@dataclass(frozen=True)
class ToolResult:
    """One of a test's ``tool_results``: what the function ``name`` returned, sent back as the call's result."""

    name: str
    content: str


def expected_calls_problem(value: Any) -> str | None:
    """Why ``expected.tool_calls`` is unusable, or None: a list of {"name": ..., "arguments": {...}}."""
    if not isinstance(value, list):
        return 'must be a list of calls like {"name": "get_weather", "arguments": {"city": "Paris"}}'
    for number, call in enumerate(value, 1):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            return f"call {number} must be an object with a non-empty \"name\""
        other = sorted(set(call) - {"name", "arguments"})
        if other:
            return f"call {number} has {other[0]!r}; a call takes \"name\" and \"arguments\""
        if "arguments" in call and not isinstance(call["arguments"], dict):
            return f"call {number}: arguments must be an object of the values to check"
    return None


def order_problem(value: Any) -> str | None:
    return None if value in ORDERS else f"must be one of {', '.join(map(repr, ORDERS))}, not {value!r}"


def tools_problem(tools: Any) -> str | None:
    """Why a request's ``tools`` cannot be checked against, or None; a suite is refused before anything is sent.
    Chat's shape (``{"type": "function", "function": {...}}``) and the Responses API's (the function's fields
    beside ``type``) are both read."""
    if not isinstance(tools, list):
        return "must be a list of tools"
    for tool in tools:
        function = _function(tool)
        if function is None:
            return ('each tool must be {"type": "function", "function": {"name": ..., "parameters": {...}}} '
                    '(or the Responses API\'s {"type": "function", "name": ..., "parameters": {...}})')
        problem = schema_problem(function.get("parameters", {}))
        if problem:
            return f"{function['name']}: parameters {problem}"
    return None


def offered(tools: Any) -> dict[str, Any]:
    """Each function the request offers, by name: its parameters schema."""
    functions = [_function(tool) for tool in tools] if isinstance(tools, list) else []
    return {f["name"]: f.get("parameters", {}) for f in functions if f is not None}


def _function(tool: Any) -> dict[str, Any] | None:
    """A tool's function (its name and parameters), in either API's shape; None when it is neither."""
    if not isinstance(tool, dict):
        return None
    function = tool.get("function") if "function" in tool else tool
    return function if isinstance(function, dict) and isinstance(function.get("name"), str) else None


def check_tool_calls(expected: Sequence[Mapping[str, Any]], order: str, called: Sequence[Mapping[str, Any]] | None,
                     tools: Any, answer: str) -> list[Check]:
    """A ``tool_calls`` check of the names, then one ``tool_arguments`` check per call made."""
    called = list(called or ())
    want = [call["name"] for call in expected]
    got = [str(call.get("name")) for call in called]
    if not called:  # `"tool_calls": []` asks for an answer that calls nothing
        detail = f'the answer called no function; it said: "{excerpt(answer)}"' if want else ""
        return [Check("tool_calls", not want, want, detail)]
    same = sorted(want) == sorted(got) if order == "any" else want == got
    names = Check("tool_calls", same, want, "" if same else f"called {show(got)}")
    pairs = _pair(expected, called, order)
    schemas = offered(tools)
    return [names, *(_arguments(call, pairs.get(n), schemas) for n, call in enumerate(called))]


def _pair(expected: Sequence[Mapping[str, Any]], called: Sequence[Mapping[str, Any]],
          order: str) -> dict[int, Mapping[str, Any]]:
    """Each call made (by position) with the expected call it answers: by position, or the first unused one of the
    same name for ``any``."""
    if order != "any":
        return {n: want for n, (want, call) in enumerate(zip(expected, called)) if want["name"] == call.get("name")}
    unused = list(expected)
    pairs = {}
    for n, call in enumerate(called):
        match = next((want for want in unused if want["name"] == call.get("name")), None)
        if match is not None:
            unused.remove(match)
            pairs[n] = match
    return pairs


def _arguments(call: Mapping[str, Any], want: Mapping[str, Any] | None, schemas: dict[str, Any]) -> Check:
    """The call's arguments: JSON, valid under its tool's schema, and holding the values the test gave."""
    name = str(call.get("name"))
    text = call.get("arguments") or ""
    try:
        arguments = json.loads(text) if text.strip() else {}
    except ValueError as error:
        return Check("tool_arguments", False, name, f'the arguments are not JSON ({error}): "{excerpt(text)}"')
    if name not in schemas:
        names = ", ".join(sorted(schemas)) or "none"
        return Check("tool_arguments", False, name, f"the request offered no function {name!r} (offered: {names})")
    violation = schema_violation(schemas[name], arguments)
    if violation:
        return Check("tool_arguments", False, name, f"do not fit the tool's schema: {violation}")
    differ = _differences(want.get("arguments", {}) if want else {}, arguments, "$")
    return Check("tool_arguments", not differ, name, "; ".join(differ))


def _differences(want: Any, got: Any, path: str) -> list[str]:
    """Where ``got`` differs from the values ``want`` gives; objects match on the keys given only."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected an object, got {json.dumps(got)[:60]}"]
        return [d for key, value in want.items()
                for d in (_differences(value, got[key], f"{path}.{key}") if key in got else [f"{path}.{key}: missing"])]
    if want == got and isinstance(want, bool) == isinstance(got, bool):  # true is not 1
        return []
    return [f"{path}: expected {json.dumps(want)[:60]}, got {json.dumps(got)[:60]}"]


def pair_results(results: Sequence[ToolResult], called: Sequence[Mapping[str, Any]] | None,
                 answer: str) -> list[tuple[Mapping[str, Any], ToolResult]] | str:
    """Each call made with the scripted result that answers it, in the calls' order (the results of one name answer
    that name's calls in turn); or why the conversation cannot go on: the server takes a request only when every
    call has its result."""
    if not called:
        return f'the answer called no function, so no tool result could be sent; it said: "{excerpt(answer)}"'
    unused = list(results)
    pairs = []
    for call in called:
        result = next((r for r in unused if r.name == call.get("name")), None)
        if result is None:
            return (f"the answer called {call.get('name')!r}, which no tool result answers "
                    f"(called {show([str(c.get('name')) for c in called])})")
        unused.remove(result)
        pairs.append((call, result))
    if unused:
        return (f"no call of {unused[0].name!r} for its tool result to answer "
                f"(called {show([str(c.get('name')) for c in called])})")
    return pairs
