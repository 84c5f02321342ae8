"""Batch files someone else wrote — a ``--llmbench-compare`` baseline, the run a planted ``latest`` points at, the
files given to ``llmbench-report`` — read once and checked at the boundary, before any test runs.

The check is a small JSON Schema of what the comparison and the report read, with strict numbers (no NaN, no
400-digit integers) and bounded size and depth, so that a malformed file is one clear error naming the file and
its first problem, never a traceback at the end of a run that costs the run its own batch. The schema is the shipped
one of ``batch.py`` without its required keys (files of older versions lack later keys).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, cast

from ..batch import Batch, reading_schema
from ..exceptions import BatchFileError
from ..jsonbound import loads_strict

MAX_BATCH_BYTES = 512 * 2**20  # a batch of a million tests is ~500 MB
MAX_DEPTH = 32  # the deepest a batch nests is ~6
MAX_INT_DIGITS = 18  # token counts and sizes fit in 64 bits; anything longer is no figure

_WHAT = {"aggregate": 'no "aggregate" object', "tests": 'no "tests" list'}


def read_batch(path: Path, required: tuple[str, ...] = ("aggregate",)) -> Batch:
    """The batch document of ``path`` with the sections ``required``; raises BatchFileError."""
    data = _parse(path, _read(path))
    if not isinstance(data, dict):
        raise BatchFileError(f"{path}: not an llmbench batch file (a JSON object with \"aggregate\" and \"tests\")")
    for name in required:
        if name not in data:
            raise BatchFileError(f"{path}: not an llmbench batch file ({_WHAT.get(name, name)})")
    problem = _first_problem(data)
    if problem is not None:
        raise BatchFileError(f"{path}: not an llmbench batch file: {problem}")
    return cast(Batch, data)  # of any version: readers use .get for what older ones lack


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BATCH_BYTES + 1)
    except FileNotFoundError:
        raise BatchFileError(f"{path}: does not exist") from None
    except IsADirectoryError:
        raise BatchFileError(f"{path}: is a folder, not a batch file") from None
    except OSError as exc:
        raise BatchFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BATCH_BYTES:
        raise BatchFileError(f"{path}: larger than {MAX_BATCH_BYTES // 2**20} MiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"{path}: not JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse(path: Path, text: str) -> Any:
    try:
        return loads_strict(text, MAX_DEPTH, MAX_INT_DIGITS)
    except json.JSONDecodeError as exc:
        raise BatchFileError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # the number hooks, or TooDeep
        raise BatchFileError(f"{path}: not an llmbench batch file: {exc}") from None


def _first_problem(data: dict[str, Any]) -> str | None:
    """The first place the document breaks the schema (in document order), as ``tests[3].success: ...``."""
    import jsonschema  # imported here: a run without a baseline never pays for it

    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(data),
                    key=lambda error: [str(part) for part in error.absolute_path])
    if not errors:
        return None
    error = errors[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    shown = json.dumps(error.instance)[:80]
    wanted = _types(error.validator_value) if error.validator in ("type", "anyOf") else f"valid ({error.message[:120]})"
    return f"{where.lstrip('.') or 'the document'}: {shown} is not {wanted}"


@functools.cache
def _schema() -> dict[str, Any]:
    return reading_schema()


def _types(expected: Any) -> str:
    names = {"object": "an object", "array": "a list", "string": "a string", "number": "a number",
             "integer": "an integer", "boolean": "true or false", "null": "null"}
    if isinstance(expected, list) and expected and isinstance(expected[0], dict):  # anyOf: a figure or an interval
        return " or ".join(_types(option.get("type")) for option in expected) + " of two"
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(names.get(str(kind), str(kind)) for kind in kinds)
