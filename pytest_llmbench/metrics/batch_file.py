"""Batch files someone else wrote — a ``--llmbench-compare`` baseline, the run a planted ``latest`` points at, the
files given to ``llmbench-report`` — read once and checked at the boundary, before any test runs.

The check is a small JSON Schema of what the comparison and the report read, with strict numbers (no NaN, no
400-digit integers) and bounded size and depth, so that a malformed file is one clear error naming the file and
its first problem, never a traceback at the end of a run that costs the run its own batch. (The typed batch and
its full schema are the structure round's; until they land this schema stays small and local to the loader.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from ..batch import Batch
from ..exceptions import BatchFileError
from ..jsonbound import loads_strict

MAX_BATCH_BYTES = 512 * 2**20  # a batch of a million tests is ~500 MB
MAX_DEPTH = 32  # the deepest a batch nests is ~6
MAX_INT_DIGITS = 18  # token counts and sizes fit in 64 bits; anything longer is no figure

_NUMBER = {"type": ["number", "null"]}
_TEXT = {"type": ["string", "null"]}
_FLAG = {"type": ["boolean", "null"]}
_FIGURES = {"type": "object", "additionalProperties": {"type": ["number", "null", "boolean"]}}
_TEXTS = {"type": ["array", "null"], "items": {"type": ["string", "null"]}}
_ROW = {
    "type": "object",
    "properties": {
        **dict.fromkeys(("test_id", "test_name", "category", "model", "error_message", "completion_file",
                         "file_stem", "host", "worker", "level", "trace_id"), _TEXT),
        **dict.fromkeys(("execution_time", "ttft", "tpot", "e2e_latency", "tokens_per_second", "prompt_tokens",
                         "completion_tokens", "start_s", "itl_mean", "schedule_lag", "reasoning_score", "attempts"),
                        _NUMBER),
        **dict.fromkeys(("success", "passed", "evaluation_passed", "slo_passed", "llm_client", "tokens_estimated"),
                        _FLAG),
        "failure": {"type": ["object", "null"], "properties": {
            "checks": _TEXTS, "slo_misses": _TEXTS, "answer_excerpt": _TEXT, "kind": _TEXT, "message": _TEXT}},
        "server_timing": {"type": ["object", "null"], "properties": {"source": _TEXT, "dropped": {"type": "object"}}},
    },
}
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "schema_version": {"type": ["integer", "null"]},
        "partial": _FLAG,
        "partial_reason": _TEXT,
        "run": {"type": ["object", "null"], "properties": {
            "models": _TEXTS, "workers": _NUMBER, "options": {"type": ["object", "null"]},
            "hostname": _TEXT, "endpoint": _TEXT, "start_time": _TEXT, "end_time": _TEXT}},
        "aggregate": _FIGURES,
        "categories": {"type": ["object", "null"], "additionalProperties": _FIGURES},
        "models": {"type": ["object", "null"], "additionalProperties": _FIGURES},
        "tests": {"type": "array", "items": _ROW},
        "slowest": {"type": ["array", "null"], "items": {"type": "object"}},
        "lost_tests": {"type": ["array", "null"]},
        "alerts": {"type": ["array", "null"]},
        "distributions": {"type": ["object", "null"], "additionalProperties": {"type": ["array", "null"]}},
        **{name: {"type": ["object", "null"]} for name in ("hardware", "load", "timeline", "sweep", "server",
                                                            "gates", "server_timing", "tracing")},
    },
}
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

    errors = sorted(jsonschema.Draft202012Validator(BATCH_SCHEMA).iter_errors(data),
                    key=lambda error: [str(part) for part in error.absolute_path])
    if not errors:
        return None
    error = errors[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    shown = json.dumps(error.instance)[:80]
    return f"{where.lstrip('.') or 'the document'}: {shown} is not {_types(error.validator_value)}"


def _types(expected: Any) -> str:
    names = {"object": "an object", "array": "a list", "string": "a string", "number": "a number",
             "integer": "an integer", "boolean": "true or false", "null": "null"}
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(names.get(str(kind), str(kind)) for kind in kinds)
