"""JSON from untrusted sources (answers, error bodies, events), parsed without unbounded recursion.

``json.loads`` recurses once per nesting level: 100,000 ``[`` raise RecursionError, and a document that
parsed just under the interpreter's limit can still overflow the stack of whatever walks it next (the
encoder writing the result file, a schema validator). So parsing stops at a fixed depth, with a ValueError.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_ANSWER_DEPTH = 100  # far beyond any real answer or error body; far below the interpreter's stack


class TooDeep(ValueError):
    """A JSON document nested deeper than allowed."""


def deeper_than(data: Any, limit: int) -> bool:
    """Iterative, so that a document that parsed can never blow the stack here."""
    stack = [(data, 1)] if isinstance(data, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def loads_bounded(text: str | bytes, max_depth: int = MAX_ANSWER_DEPTH) -> Any:
    """``json.loads``, raising TooDeep (a ValueError) past ``max_depth`` levels instead of RecursionError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    if _openings(text) > max_depth and deeper_than(data, max_depth):
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return data


def loads_strict(text: str, max_depth: int, max_int_digits: int) -> Any:
    """JSON someone else wrote for us to compute with (a suite, a batch file): no NaN or Infinity, integers of at most
    ``max_int_digits`` digits (a 400-digit count would overflow every float made from it), finite floats, depth
    bounded. Raises ValueError: json.JSONDecodeError for syntax, TooDeep for depth, a plain one for a number."""
    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise ValueError(f"integer with {len(digits.lstrip('-'))} digits (at most {max_int_digits} allowed)")
        return int(digits)

    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_int=bounded_int, parse_float=_finite_float)
    except RecursionError:
        raise TooDeep(f"nesting deeper than {max_depth} levels") from None
    if deeper_than(data, max_depth):
        raise TooDeep(f"nesting deeper than {max_depth} levels")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:60]} is too large for a number")
    return value


def _openings(text: str | bytes) -> int:
    """An upper bound on the depth: each level opens with a bracket (one inside a string only adds to the bound).
    Counting is C-speed, so the walk is left for the rare document with more brackets than the limit."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")
