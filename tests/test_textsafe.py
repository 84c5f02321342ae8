from __future__ import annotations

import unicodedata

import pytest

from pytest_llmbench.textsafe import escape_for_terminal, excerpt


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ANSI colour
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC window title, BEL-terminated
        ("\x1b]8;;http://127.0.0.1/\x1b\\link", "\\x1b]8;;http://127.0.0.1/\\x1b\\link"),  # OSC 8 hyperlink
        ("\x9b2J", "\\x9b2J"),  # 8-bit CSI: clear screen
        ("a\x00b\x7fc\x85d", "a\\x00b\\x7fc\\x85d"),  # NUL, DEL, C1 next-line
        ("one\ntwo\r\tthree", "one\\ntwo\\r\\tthree"),
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("\u2066x\u2069 \u200fy", "\\u2066x\\u2069 \\u200fy"),  # isolates, right-to-left mark
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("\ufeffzero\u200bwidth", "\\ufeffzero\\u200bwidth"),
        ("soft\u00adhy\u2060phen", "soft\\xadhy\\u2060phen"),  # soft hyphen, word joiner
        ("tag\U000e0001\U000e0041", "tag\\U000e0001\\U000e0041"),  # plane-14 tags hide text
    ],
)
def test_controls_and_invisible_marks_become_visible_escapes(raw: str, shown: str) -> None:
    assert escape_for_terminal(raw) == shown


def test_ordinary_text_including_accents_cjk_and_emoji_is_unchanged() -> None:
    text = "Café naïve — 日本語 Ελληνικά עברית 👍🏽 👨\u200d👩\u200d👧 \\d+ 'quoted' \"double\""
    assert escape_for_terminal(text) == text


def test_no_control_format_or_separator_character_survives_except_joiners() -> None:
    every_bmp_char = "".join(chr(code) for code in range(0x10000) if not 0xD800 <= code <= 0xDFFF)
    escaped = escape_for_terminal(every_bmp_char)
    survivors = {ch for ch in escaped if unicodedata.category(ch) in ("Cc", "Zl", "Zp")}
    bidi = {ch for ch in escaped if unicodedata.bidirectional(ch) in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI")}
    assert survivors == set()
    assert bidi == set()


def test_every_format_character_on_every_plane_is_escaped_except_the_joiners() -> None:
    every_cf = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"]
    joiners = {"\u200c", "\u200d"}
    assert joiners < set(every_cf)
    survivors = [f"U+{ord(ch):04X}" for ch in every_cf if escape_for_terminal(ch) == ch and ch not in joiners]
    assert survivors == []


def test_escaping_twice_changes_nothing_more() -> None:
    once = escape_for_terminal("\x1b[2J\u202e\n")
    assert escape_for_terminal(once) == once


def test_excerpt_of_the_beginning_marks_the_cut_end() -> None:
    assert excerpt("abcdefghij", context=4) == "abcd…"
    assert excerpt("abc", context=4) == "abc"


def test_excerpt_around_a_span_marks_both_cuts_and_escapes() -> None:
    text = "0123456789\x1bXYZ0123456789"
    assert excerpt(text, 10, 14, context=3) == "…789\\x1bXYZ012…"


def test_excerpt_of_the_end_shows_the_last_characters() -> None:
    text = "x" * 100 + "the end."
    assert excerpt(text, len(text), context=8) == "…the end."
