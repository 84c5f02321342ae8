"""Make untrusted text (model answers, server error bodies) safe to print on a terminal.

A model's answer can hold escape sequences that recolour, clear or retitle the terminal, and bidi
controls that make a line read differently from what it contains. Every excerpt the plugin shows
goes through `escape_for_terminal` so that what is printed is what the bytes are.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Every Unicode format (Cf) character: invisible, yet some reorder a line (bidi marks, embeddings,
# overrides, isolates), split or hide it (zero-width space, soft hyphen, word joiner, BOM) or carry
# hidden text (the plane-14 tag characters). Hard-coded so that importing the plugin does not scan
# all code points; derived with unicodedata, Unicode 18.0 (the set is unchanged since 15.0, and a
# superset of older versions'). ZWNJ/ZWJ (U+200C/U+200D) are left alone: emoji sequences and several
# scripts need them.
_FORMAT_RANGES = [
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
]
_JOINERS = {0x200C, 0x200D}
# Line and paragraph separators are not Cf but break a line where none is shown.
_INVISIBLE = [
    *(code for low, high in _FORMAT_RANGES for code in range(low, high + 1) if code not in _JOINERS),
    0x2028,
    0x2029,
]


def _visible_form(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# C0 controls, DEL and C1 controls (which include the 8-bit CSI 0x9b), then the invisible marks.
# Escaping ESC (0x1b) and CSI/OSC (0x9b/0x9d) is what disarms ANSI and OSC sequences: the rest of a
# sequence is ordinary printable text.
_TABLE = {code: _visible_form(code) for code in [*range(0x20), *range(0x7F, 0xA0), *_INVISIBLE]}


# A regular-expression class of the invisible characters above, for callers that replace rather than show them
# (file names: a U+202E in a name makes "exe.txt" read as "txt.exe" in a file manager).
INVISIBLE_CLASS = "".join(f"\\U{code:08x}" for code in _INVISIBLE)


def escape_for_terminal(text: str) -> str:
    """Show control and invisible characters as \\xNN, \\uNNNN or \\UNNNNNNNN (newline as \\n); leave the rest.

    Backslashes are not doubled: the output is for reading, not for parsing back.
    """
    return text.translate(_TABLE)


def escape_node_name(text: str) -> str:
    """A test name for a pytest node id: escaped as for the terminal, with backslashes doubled first, so that
    distinct names stay distinct ("dup\\x1b" the control character and "dup\\\\x1b" the four characters)."""
    return escape_for_terminal(text.replace("\\", "\\\\"))


def excerpt(text: str, start: int = 0, end: int | None = None, context: int = 40) -> str:
    """`text[start:end]` with `context` characters either side, escaped, with … where it was cut.

    With the defaults it is the beginning of the text; `excerpt(t, len(t), context=60)` is its end.
    """
    end = start if end is None else end
    lo = max(0, start - context)
    hi = min(len(text), end + context)
    before = "…" if lo > 0 else ""
    after = "…" if hi < len(text) else ""
    return before + escape_for_terminal(text[lo:hi]) + after
