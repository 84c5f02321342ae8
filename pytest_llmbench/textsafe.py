"""Make untrusted text (model answers, server error bodies) safe to print on a terminal.

A model's answer can hold escape sequences that recolour, clear or retitle the terminal, and bidi
controls that make a line read differently from what it contains. Every excerpt the plugin shows
goes through `escape_for_terminal` so that what is printed is what the bytes are.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Invisible characters that reorder or split a line: bidi marks, embeddings, overrides and isolates,
# the Arabic letter mark, zero-width space, line/paragraph separators and the byte-order mark.
# ZWJ/ZWNJ (U+200C/U+200D) are left alone: emoji sequences and several scripts need them.
_INVISIBLE = [0x061C, 0x200B, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF]


def _visible_form(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# C0 controls, DEL and C1 controls (which include the 8-bit CSI 0x9b), then the invisible marks.
# Escaping ESC (0x1b) and CSI/OSC (0x9b/0x9d) is what disarms ANSI and OSC sequences: the rest of a
# sequence is ordinary printable text.
_TABLE = {code: _visible_form(code) for code in [*range(0x20), *range(0x7F, 0xA0), *_INVISIBLE]}


def escape_for_terminal(text: str) -> str:
    """Show control and invisible characters as \\xNN / \\uNNNN (newline as \\n); leave all else as is.

    Backslashes are not doubled: the output is for reading, not for parsing back.
    """
    return text.translate(_TABLE)


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
