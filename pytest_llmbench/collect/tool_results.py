"""A tool-call test's ``tool_results``: checked when the suite loads, and made the test's two turns.

The first request sends the test's messages and gets the model's calls, which ``expected.tool_calls`` checks; the
second carries those calls and the scripted results and gets the final answer, which every other check reads. As
turns, both requests are sent, counted and stored as a conversation's are (runner.talk).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..checks.tool_calls import ToolResult, offered
from .sections import Problems, describe, short
from .workload.spec import Turn

FIRST_ANSWER_CHECKS = ("tool_calls", "tool_calls_order")  # what the first answer is checked by; the rest, the final


def tool_results(raw: dict[str, Any], parameters: dict[str, Any], expected: dict[str, Any],
                 problems: Problems) -> tuple[ToolResult, ...] | None:
    """The test's ``tool_results``, each answering a function the request offers and, when the test names the calls
    it expects, one of those; None (and the problems said) when they cannot be sent."""
    value = raw["tool_results"]
    if "turns" in raw or "messages" not in raw:
        problems.add("tool_results continues a chat or Responses API test's 'messages' with the results of its "
                     "calls: give 'messages' (and no 'turns')")
    if not isinstance(value, list) or not value:
        problems.add(f'tool_results must be a non-empty list of {{"name": ..., "content": "..."}}, got '
                     f"{describe(value)}")
        return None
    functions = offered(parameters.get("tools"))
    if not functions:
        problems.add("tool_results needs parameters.tools: the functions the model may call")
    results = []
    for n, item in enumerate(value):
        where = f"tool_results[{n}]"
        if not isinstance(item, dict):
            problems.add(f'{where} must be an object {{"name": ..., "content": "..."}}, got {describe(item)}')
            continue
        problems.unknown_keys(item, ("name", "content"), prefix=f"{where}.")
        name, content = item.get("name"), item.get("content")
        if not isinstance(content, str):
            problems.add(f"{where}.content must be a string (what the function returned, e.g. JSON text), got "
                         f"{describe(content)}")
        if not (isinstance(name, str) and name):
            problems.add(f"{where}.name must be the name of a called function, got {describe(name)}")
        elif functions and name not in functions:
            problems.add(f"{where}.name {short(name)!r} is not a function parameters.tools offers (offered: "
                         f"{', '.join(sorted(functions))})")
        elif isinstance(content, str):
            results.append(ToolResult(name, content))
    return _against_expected(results, expected, problems) if len(results) == len(value) else None


def _against_expected(results: list[ToolResult], expected: dict[str, Any],
                      problems: Problems) -> tuple[ToolResult, ...] | None:
    """Results that answer calls ``expected.tool_calls`` does not ask for could never be sent."""
    calls = expected.get("tool_calls")
    if not isinstance(calls, list):
        return tuple(results)
    wanted = Counter(str(call.get("name")) for call in calls if isinstance(call, dict))
    given = Counter(result.name for result in results)
    extra = given - wanted
    if extra:
        name = next(iter(extra))
        problems.add(f"tool_results answers {given[name]} call(s) of {name!r} but expected.tool_calls asks for "
                     f"{wanted[name]}: a result must answer a call the model makes")
        return None
    return tuple(results)


def tool_turns(results: tuple[ToolResult, ...], expected: dict[str, Any]) -> tuple[Turn, Turn]:
    """The two requests: the calls, checked by ``expected.tool_calls``; the final answer, by every other check."""
    first = {key: value for key, value in expected.items() if key in FIRST_ANSWER_CHECKS}
    final = {key: value for key, value in expected.items() if key not in FIRST_ANSWER_CHECKS}
    return Turn(None, first or None), Turn(None, final or None, tool_results=results)
