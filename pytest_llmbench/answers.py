"""Find the part of a free-form answer that a check is about: the final answer, a number, the JSON.

Models wrap answers in prose, Markdown and code fences; these rules are deliberately few and
documented, so that a failing check can be explained by reading the answer.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .textsafe import excerpt

# "answer:", "Final answer:", "**Answer:**", "the answer is:", and GSM8K's "#### 72" (only before a
# number, since "####" is also a Markdown heading).
_MARKER = re.compile(r"\banswer\b[\s*_]*(?:is[\s*_]*)?:|####(?=[ \t]*[-−$]?\.?\d)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
# 42, -3.5, .5, 1,234,567.89, $12.50, 3/4; a minus sign may be ASCII or U+2212.
_NUMBER = re.compile(r"(?<![\w.])([-−]?)\$?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:/(\d+))?")
_EDGE_NOISE = " \t\r\n*_`'\".,;:!?()[]{}$"
_LINE = re.compile(r"[^\r\n]+")
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Extracted:
    text: str  # as written in the answer
    start: int  # its span in the answer, for the excerpt around it
    end: int

    @property
    def normalized(self) -> str:
        return normalize_answer(self.text)


def normalize_answer(text: str) -> str:
    """Case, surrounding punctuation/Markdown and runs of spaces do not make answers differ."""
    boxed = _BOXED.search(text)
    if boxed:
        text = boxed.group(1)
    return " ".join(text.strip(_EDGE_NOISE).split()).casefold()


def number_value(value: Any) -> float | None:
    """A JSON number, or a string that is one number ("1,234", "$12.50", "50%", "3/4"); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    match = _NUMBER.fullmatch(value.strip().rstrip("%").rstrip())
    return _match_value(match) if match else None


def _match_value(match: re.Match[str]) -> float | None:
    sign, digits, denominator = match.groups()
    number = float(digits.replace(",", ""))
    if denominator is not None:
        if int(denominator) == 0:
            return None
        number /= int(denominator)
    return -number if sign else number


def extract_answer(text: str, numeric: bool) -> Extracted | None:
    """The final answer: the first line after the last answer marker, else the last \\boxed{}; with
    neither, the last number (numeric) or the last non-empty line. A numeric answer is the first
    number inside that region."""
    region = _marked_region(text)
    if numeric:
        match = _last(_NUMBER, text) if region is None else _NUMBER.search(text, *region)
        return Extracted(match.group(0), match.start(), match.end()) if match else None
    if region is None:
        lines = _content_lines(text, 0)
        region = lines[-1] if lines else None
    return Extracted(text[region[0] : region[1]], *region) if region else None


def _marked_region(text: str) -> tuple[int, int] | None:
    marker = _last(_MARKER, text)
    if marker is not None:
        lines = _content_lines(text, marker.end())
        return lines[0] if lines else None
    boxed = _last(_BOXED, text)
    return boxed.span(1) if boxed else None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    match = None
    for match in pattern.finditer(text):
        pass
    return match


def _content_lines(text: str, start: int) -> list[tuple[int, int]]:
    """Spans (without surrounding spaces) of the lines from `start` on that hold more than spaces,
    Markdown and punctuation."""
    spans = []
    for line in _LINE.finditer(text, start):
        content = line.group(0)
        if content.strip(_EDGE_NOISE):
            lead = len(content) - len(content.lstrip())
            spans.append((line.start() + lead, line.start() + len(content.rstrip())))
    return spans


def answer_json(text: str) -> tuple[Any, str | None]:
    """The JSON in an answer: the whole answer, else the first ```json fenced block.

    Returns (value, None), or (None, why not) with an excerpt around the parse error.
    """
    whole = text.strip()
    try:
        return json.loads(whole), None
    except json.JSONDecodeError as error:
        fence = _FENCE.search(text)
        if fence is None:
            return None, _json_problem("answer is not JSON", whole, error)
    try:
        return json.loads(fence.group(1)), None
    except json.JSONDecodeError as error:
        return None, _json_problem("the fenced block is not JSON", fence.group(1), error)


def _json_problem(what: str, document: str, error: json.JSONDecodeError) -> str:
    return f'{what} ({error.msg} at character {error.pos}): "{excerpt(document, error.pos, context=30)}"'
