"""JSON from untrusted sources: parsed up to a fixed depth, however the text is spelt."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmbench.jsonbound import TooDeep, loads_bounded


def nested(depth: int) -> str:
    return "[" * (depth - 1) + '{"a": 1}' + "]" * (depth - 1)


@pytest.mark.parametrize("encode", [str, str.encode, lambda text: text.encode("utf-16")], ids=["str", "utf-8", "utf-16"])
def test_the_limit_holds_for_text_and_bytes_in_any_encoding_json_reads(encode: Any) -> None:
    assert loads_bounded(encode(nested(5)), max_depth=5) == [[[[{"a": 1}]]]]
    with pytest.raises(TooDeep, match="deeper than 5 levels"):
        loads_bounded(encode(nested(6)), max_depth=5)


def test_brackets_inside_strings_never_count_as_depth() -> None:
    text = '{"answer": "[[[[[[{{{{{{"}'

    assert loads_bounded(text, max_depth=1) == {"answer": "[[[[[[{{{{{{"}
