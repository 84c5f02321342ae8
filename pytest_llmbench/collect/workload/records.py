"""Records of a JSONL file (or one JSON array), read one at a time: a 1 GB dataset never sits in memory.

Each record comes with where it was (its line, or its place in the array) so that a malformed one can be named;
a line longer than ``MAX_RECORD_BYTES`` is skipped without being read into memory.
"""

from __future__ import annotations

import codecs
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from ...exceptions import LLMBenchWarning

MAX_RECORD_BYTES = 16 * 2**20
MAX_WARNINGS = 20  # malformed records named one by one; the rest are counted
T = TypeVar("T")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Record:
    where: int  # the line number (JSONL) or the item's number in the array, from 1
    value: Any  # the parsed JSON, or None when ``problem`` says why it could not be read
    problem: str | None = None


class Usable(Generic[T]):
    """(where, what ``read`` made of it) for each record ``read`` finds no problem with; each malformed record is a
    warning naming the file and line (the first MAX_WARNINGS, then a count), and ``bad`` counts them."""

    def __init__(self, path: Path, handle: IO[bytes], read: Callable[[Any], tuple[T, str | None]]) -> None:
        self.path, self.handle, self.read = path, handle, read
        self.bad = 0

    def __iter__(self) -> Iterator[tuple[int, T]]:
        for record in records(self.handle):
            value, problem = (None, record.problem) if record.problem else self.read(record.value)
            if problem is None:
                yield record.where, value  # type: ignore[misc]
                continue
            self.bad += 1
            if self.bad <= MAX_WARNINGS:
                warnings.warn(LLMBenchWarning(f"llmbench: {self.path}:{record.where}: {problem}; skipped"),
                              stacklevel=2)
        if self.bad > MAX_WARNINGS:
            warnings.warn(LLMBenchWarning(f"llmbench: {self.path}: {self.bad - MAX_WARNINGS} more malformed "
                                          "records skipped"), stacklevel=2)


def records(handle: IO[bytes]) -> Iterator[Record]:
    """Every record of a JSONL file, or of a file that is one JSON array (as some ShareGPT dumps are)."""
    head = handle.read(_CHUNK).removeprefix(codecs.BOM_UTF8)  # as some editors save UTF-8
    if head.lstrip()[:1] == b"[":
        yield from _array_items(head, handle)
    else:
        yield from _lines(head, handle)


def _lines(head: bytes, handle: IO[bytes]) -> Iterator[Record]:
    number, pending, skipping = 0, bytearray(head), False
    while True:
        end = pending.find(b"\n")
        if end < 0:
            more = handle.read(_CHUNK)
            if not more:
                break
            if skipping:
                pending.clear()
            pending += more
            if len(pending) > MAX_RECORD_BYTES and pending.find(b"\n") < 0:
                skipping = True  # drop what is read of the line: it is too long to be kept
            continue
        number += 1
        line = bytes(pending[:end]) if end <= MAX_RECORD_BYTES and not skipping else b""
        del pending[:end + 1]
        if skipping or end > MAX_RECORD_BYTES:
            skipping = False
            yield Record(number, None, f"longer than {MAX_RECORD_BYTES} bytes")
            continue
        if line.strip():
            yield _parsed(number, line)
    if skipping:
        yield Record(number + 1, None, f"longer than {MAX_RECORD_BYTES} bytes")
    elif pending.strip():
        yield _parsed(number + 1, bytes(pending))


def _parsed(where: int, raw: bytes) -> Record:
    try:
        return Record(where, json.loads(raw.decode("utf-8")))
    except UnicodeDecodeError:
        return Record(where, None, "not valid UTF-8")
    except (ValueError, RecursionError) as exc:
        return Record(where, None, f"not JSON ({str(exc).split(':', 1)[0]})")


def _array_items(head: bytes, handle: IO[bytes]) -> Iterator[Record]:
    """The items of one top-level JSON array, decoded one by one from a growing buffer."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may straddle two chunks
    text = utf8.decode(head)
    position = text.index("[") + 1
    number = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position < len(text) and text[position] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as exc:
            more = handle.read(_CHUNK)
            if not more:
                yield Record(number + 1, None, f"the array is cut short or broken ({str(exc).split(':', 1)[0]})")
                return
            text = text[position:] + utf8.decode(more)
            position = 0
            if len(text) > MAX_RECORD_BYTES:
                yield Record(number + 1, None, f"an item longer than {MAX_RECORD_BYTES} bytes, or broken JSON")
                return
            continue
        number += 1
        yield Record(number, value)
        position = end
