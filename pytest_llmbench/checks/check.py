"""One named check of an answer, as evaluate.py and the API-specific checks (tool_calls.py) build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..textsafe import excerpt

OPERATORS = {
    "answer": "==",
    "min_length": ">=",
    "max_length": "<=",
    "min_tokens": ">=",
    "max_tokens": "<=",
    "rubric": ">=",
    "similar_to": ">=",  # a cosine with the reference text (checks/embeddings.py)
    "dissimilar_to": "<=",
}


@dataclass
class Check:
    name: str
    passed: bool
    expected: Any = None
    detail: str = ""

    @property
    def label(self) -> str:
        """How the failure line names the check: `contains 'Paris'`, `answer == 42`, `is_json`."""
        shown = show(self.expected)
        if shown is None:
            return self.name
        operator = OPERATORS.get(self.name)
        return f"{self.name} {operator} {shown}" if operator else f"{self.name} {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "expected": self.expected, "detail": self.detail}



def show(value: Any, limit: int = 60) -> str | None:
    """A short display form of an expected value; None for values too large or plain to name."""
    if isinstance(value, bool) or value is None or isinstance(value, dict):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return "'" + excerpt(value, context=limit) + "'"
    if isinstance(value, list):
        shown = ", ".join(show(item, limit) or "…" for item in value)
        return "[" + (shown if len(shown) <= limit else shown[:limit] + "…") + "]"
    return None


