from __future__ import annotations

from typing import Any

import pytest

from pytest_llmbench.checks.extract import (
    answer_json,
    extract_answer,
    normalize_answer,
    number_value,
)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("6 times 7 is 42.", "42"),
        ("First 3, then 5, so 8 in all.", "8"),
        ("Answer: 42\nThat was easy, 100%.", "42"),
        ("Step 1: 40 + 2\nFinal Answer: 42 apples (from 6 boxes)", "42"),
        ("**Answer:** 42", "42"),
        ("The answer is: -17", "-17"),
        ("Natalia sold 48 clips... 48 + 24 = 72\n#### 72", "72"),
        ("#### Step 1\nWe add 2 and 3.\n#### 5", "5"),  # headings are not GSM8K markers
        ("answer: 1 apple. Later I said answer: 3", "3"),  # the last marker wins
        ("So $x = \\boxed{12}$ and we check 13 > 12.", "12"),
        ("Answer:\n\n  1,234,567.5 units", "1,234,567.5"),
        ("It costs $12.50 in total.", "$12.50"),
        ("The probability is 3/4.", "3/4"),
        ("The change is −5 degrees.", "−5"),
        ("The answer is 42 (6 x 7 = 42, not 41).", "42"),  # "answer is" marks; brackets are asides
        ("The answer is **7**, as 3 + 4 = 7 and not 8", "7"),
        ("The answer is not obvious: 3 or 4", "4"),  # "answer is" marks only before a number
        ("Answer: 2+2=4", "4"),  # after the last "="
        ("Final answer: 72 clips", "72"),
        ("Final answer: After 3 days she has 72 clips.", "72"),  # else the last number
        ("Answer: (B) 42", "42"),
        ("So \\boxed{x = 12}", "12"),
        ("Answer: (42)", "42"),  # only bracketed numbers: they count
    ],
)
def test_numeric_answer_extraction(text: str, found: str) -> None:
    extracted = extract_answer(text, numeric=True)
    assert extracted is not None
    assert extracted.text == found
    assert text[extracted.start : extracted.end] == found


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Let me think.\nAnswer: **Paris**.", "paris"),
        ("Final answer:\n  B) ", "b"),
        ("The choices were many.\nParis", "paris"),  # no marker: the last non-empty line
        ("We get \\boxed{New   York}", "new york"),
        ("answer: `True`", "true"),
    ],
)
def test_text_answer_extraction(text: str, normalized: str) -> None:
    extracted = extract_answer(text, numeric=False)
    assert extracted is not None
    assert extracted.normalized == normalized


@pytest.mark.parametrize("text", ["", "no digits here", "Answer: none at all"])
def test_no_number_gives_none(text: str) -> None:
    assert extract_answer(text, numeric=True) is None


def test_blank_answer_has_no_text_answer() -> None:
    assert extract_answer(" \n ** \n", numeric=False) is None


@pytest.mark.parametrize(
    ("value", "number"),
    [(42, 42.0), (2.5, 2.5), ("1,234", 1234.0), ("$12.50", 12.5), ("50%", 50.0), ("3/4", 0.75), ("-0.5", -0.5),
     (".5", 0.5), ("Paris", None), ("3 apples", None), ("1/0", None), (True, None), (None, None), (float("nan"), None)],
)
def test_number_value_accepts_one_plain_or_formatted_number(value: Any, number: float | None) -> None:
    assert number_value(value) == number


def test_normalize_ignores_case_edges_markdown_and_space_runs() -> None:
    assert normalize_answer("  **The  Beatles**!  ") == normalize_answer("the beatles") == "the beatles"


def test_answer_json_reads_the_whole_answer_or_the_first_fenced_block() -> None:
    assert answer_json(' [1, 2] ') == ([1, 2], None)
    assert answer_json('Sure:\n```JSON\n{"a": 1}\n```\nand\n```json\n{"b": 2}\n```') == ({"a": 1}, None)
    assert answer_json('```\n{"bare": true}\n```') == ({"bare": True}, None)


def test_closing_fence_of_an_earlier_block_does_not_open_one() -> None:
    text = 'Run:\n```bash\necho hi\n```\nThen:\n```json\n{"a": 1}\n```'
    assert answer_json(text) == ({"a": 1}, None)


def test_answer_json_takes_the_first_json_or_untagged_block_that_parses() -> None:
    text = 'Draft:\n```json\n{"a": 1,}\n```\n```python\nx = {"p": 1}\n```\nFixed:\n```\n{"a": 1}```'
    assert answer_json(text) == ({"a": 1}, None)


def test_answer_json_names_the_parse_error_position() -> None:
    value, problem = answer_json('{"a": 1} trailing words')
    assert value is None
    assert problem == 'answer is not JSON (Extra data at character 9): "{"a": 1} trailing words"'


def test_code_block_in_another_language_is_not_json() -> None:
    value, problem = answer_json("```python\nprint(1)\n```")
    assert value is None
    assert problem is not None and problem.startswith("answer is not JSON")
