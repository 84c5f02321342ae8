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

from ..jsonbound import TooDeep, loads_bounded
from ..textsafe import excerpt

# "answer:", "Final answer:", "**Answer:**", "the answer is:", and, only before a number, "the answer is"
# ("the answer is not obvious" marks nothing) and GSM8K's "#### 72" ("####" is also a Markdown heading).
_BEFORE_NUMBER = r"(?=[\s*_]*[-−$]?\.?\d)"
_MARKER = re.compile(
    rf"\banswer\b[\s*_]*(?:is[\s*_]*)?:|\banswer[\s*_]+is\b{_BEFORE_NUMBER}|####{_BEFORE_NUMBER}", re.IGNORECASE
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
# 42, -3.5, .5, 1,234,567.89, $12.50, 3/4; a minus sign may be ASCII or U+2212.
_NUMBER = re.compile(r"(?<![\w.])([-−]?)\$?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:/(\d+))?")
_EDGE_NOISE = " \t\r\n*_`'\".,;:!?()[]{}$"
_LINE = re.compile(r"[^\r\n]+")
# A run of 3+ backticks; when it opens a block, the rest of its line is the info string ("json").
_FENCE = re.compile(r"(`{3,})([^`\r\n]*)(\r?\n)?")


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
    neither, the last number (numeric) or the last non-empty line.

    In a marked line or \\boxed{} the number is the first one after the last "=" ("2+2=4" gives 4),
    else the LAST one ("After 3 days she has 72 clips." gives 72); numbers in brackets are asides that
    count only when there is no other ("42 apples (from 6 boxes)" and "42 (6 x 7 = 42, not 41)" give
    42). The last rather than the first because a sentence ends on its result and what precedes it is
    working; the price is that "72 clips in 2 bags" gives 2.
    """
    region = _marked_region(text)
    if numeric:
        match = _last(_NUMBER, text) if region is None else _number_in_region(text, *region)
        return Extracted(match.group(0), match.start(), match.end()) if match else None
    if region is None:
        lines = _content_lines(text, 0)
        region = lines[-1] if lines else None
    return Extracted(text[region[0] : region[1]], *region) if region else None


def _number_in_region(text: str, start: int, end: int) -> re.Match[str] | None:
    """The number a marked region gives as the answer (the rules are in extract_answer's docstring)."""
    region = text[start:end]
    aside = _in_brackets(region)
    numbers = list(_NUMBER.finditer(text, start, end))
    main = [number for number in numbers if not aside[number.start() - start]] or numbers
    equals = [start + i for i, char in enumerate(region) if char == "=" and not aside[i]]
    after = [number for number in main if equals and number.start() > equals[-1]]
    return after[0] if after else (main[-1] if main else None)


def _in_brackets(region: str) -> list[bool]:
    """For each character, whether it stands inside (...) or [...]; a stray closer ("B) 42") opens nothing."""
    depth, inside = 0, []
    for char in region:
        depth += char in "(["
        inside.append(depth > 0)
        if char in ")]":
            depth = max(0, depth - 1)
    return inside


def _marked_region(text: str) -> tuple[int, int] | None:
    marker = _last(_MARKER, text)
    if marker is not None:
        lines = _content_lines(text, marker.end())
        return lines[0] if lines else None
    boxed = _last(_BOXED, text)
    return boxed.span(1) if boxed else None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the loop's last value is the answer
        pass
    return last


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
    """The JSON in an answer: the whole answer, else the first fenced block tagged `json` or untagged
    that parses.

    Returns (value, None), or (None, why not) with an excerpt around the parse error: of the first
    such block when none parses, else of the whole answer.
    """
    whole = text.strip()
    try:
        return loads_bounded(whole), None
    except TooDeep as error:  # "[[[[...": parsing stops at a fixed depth, never a RecursionError
        return None, f"answer is {error}"
    except json.JSONDecodeError as error:
        first_problem = _json_problem("answer is not JSON", whole, error)
    blocks = [content for tag, content in _fenced_blocks(text) if tag in ("", "json")]
    for i, content in enumerate(blocks):
        try:
            return loads_bounded(content), None
        except TooDeep as error:
            return None, f"the fenced block is {error}"
        except json.JSONDecodeError as error:
            if i == 0:
                first_problem = _json_problem("the fenced block is not JSON", content, error)
    return None, first_problem


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(tag, content) of each fenced block, casefolded tag. Fences are paired in order, so the closing
    fence of one block is never taken for the opening of the next; a closing fence needs at least as
    many backticks as its opening, and an unclosed block is dropped."""
    blocks: list[tuple[str, str]] = []
    position = 0
    while (opening := _FENCE.search(text, position)) is not None:
        position = opening.end()
        if opening.group(3) is None:  # inline (```x```) or at the very end: opens no block
            continue
        closing = re.compile(f"`{{{len(opening.group(1))},}}").search(text, position)
        if closing is None:
            break
        tag = opening.group(2).strip().split(maxsplit=1)
        blocks.append((tag[0].casefold() if tag else "", text[position : closing.start()]))
        position = closing.end()
    return blocks


def _json_problem(what: str, document: str, error: json.JSONDecodeError) -> str:
    return f'{what} ({error.msg} at character {error.pos}): "{excerpt(document, error.pos, context=30)}"'
