"""Reading a suite file's JSON without trusting it: bounded size, strict UTF-8 and numbers, bounded depth.

Every problem raises SuiteError with one readable sentence, so that a hostile or broken file fails fast
and clearly instead of hanging or ending in a traceback.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from ..exceptions import SuiteError
from ..jsonbound import TooDeep, loads_strict

DEFAULT_MAX_BYTES = 50 * 2**20
MAX_DEPTH = 64
MAX_INT_DIGITS = 100


_BOM = b"\xef\xbb\xbf"
# A lone surrogate escape decodes into a str that cannot be written back as UTF-8 later on.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def read_suite_json(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The parsed JSON of a suite file; raises SuiteError."""
    return _parse(path, _read_text(path, max_bytes))


def _read_text(path: Path, max_bytes: int) -> str:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SuiteError(path, "is a directory, not a suite file")
        if not stat.S_ISREG(info.st_mode):
            raise SuiteError(path, "is not a regular file")
        if info.st_size > max_bytes:
            raise SuiteError(path, _too_big(info.st_size, max_bytes))
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # bounded even if the file grew since stat()
    except FileNotFoundError:
        raise SuiteError(path, "no such file") from None
    except OSError as exc:
        raise SuiteError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise SuiteError(path, _too_big(len(raw), max_bytes))
    skip = len(_BOM) if raw.startswith(_BOM) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start + skip
        line = raw.count(b"\n", 0, at) + 1
        where = f"byte 0x{raw[at]:02x} at byte offset {at} (line {line})"
        raise SuiteError(path, f"not valid UTF-8: {where}; save the file as UTF-8") from None


def _too_big(size: int, limit: int) -> str:
    return (
        f"file is {size} bytes ({size / 2**20:.1f} MiB), over the limit of {limit} bytes "
        f"({limit / 2**20:.1f} MiB); raise it with --llmbench-max-suite-bytes"
    )


def _parse(path: Path, text: str) -> Any:
    if not text.strip():
        raise SuiteError(path, 'file is empty; a suite is a JSON object with a "tests" list')
    try:
        data = loads_strict(text, MAX_DEPTH, MAX_INT_DIGITS)
    except json.JSONDecodeError as exc:
        raise SuiteError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except TooDeep as exc:
        raise SuiteError(path, str(exc)) from None
    except ValueError as exc:  # from the number hooks, which also keep int() under Python's digit limit
        raise SuiteError(path, f"invalid JSON number: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise SuiteError(path, "a string holds an unpaired surrogate escape (\\ud800-\\udfff)") from None
    return data
