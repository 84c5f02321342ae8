"""JSON Schema validation of answers and tool-call arguments, with the ``jsonschema`` package.

A validator is built once per schema and kept: a load run checks the same schema on every answer, and building
one (the meta-schema lookup, format checkers) costs more than validating a small answer. ``jsonschema`` is the
reference and writes every failure; it takes about 1 ms for a 2 KB answer, so with the ``fastschema`` extra
(``jsonschema-rs``, compiled) an answer it finds valid is not validated again (A2: ≤ 0.1 ms a test). An answer it
refuses is judged by ``jsonschema``, so verdicts and messages are the reference's either way.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ..textsafe import excerpt

NOT_A_SCHEMA = "must be a JSON Schema object"


def schema_violation(schema: Any, instance: Any) -> str | None:
    """The most relevant error as ``<path>: <message>`` ("$.location.city: 5 is not of type 'string'"), or None."""
    import jsonschema  # here: loading it costs every run tens of ms, and only suites with a schema need it

    text = _canonical(schema)
    fast = _fast_validator(text)
    if fast is not None and fast.is_valid(instance):
        return None
    validator = _validator(text)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    return f"{error.json_path}: {excerpt(error.message, context=120)}"


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is no JSON Schema, or None: suites are checked with this before anything is sent."""
    if not isinstance(schema, (dict, bool)):
        return NOT_A_SCHEMA
    return _schema_problem(_canonical(schema))


_TEXTS: dict[int, tuple[Any, str]] = {}  # id(schema) -> (the schema, held so that its id is not reused; its text)
_TEXTS_KEPT = 4096


def _canonical(schema: Any) -> str:
    """The schema's canonical JSON text, the key of the caches below; remembered per schema object, since a test's
    schema is checked with each of its answers (a load run's repeats) and writing it out costs more than checking."""
    held = _TEXTS.get(id(schema))
    if held is not None and held[0] is schema:
        return held[1]
    text = json.dumps(schema, sort_keys=True)
    if len(_TEXTS) < _TEXTS_KEPT:
        _TEXTS[id(schema)] = (schema, text)
    return text


@functools.lru_cache(maxsize=256)
def _schema_problem(schema_text: str) -> str | None:
    """Checked once per schema: every test's expectations are checked again when its answer is (evaluate.py)."""
    import jsonschema

    schema = json.loads(schema_text)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        return f"is not a valid JSON Schema: {error.message}"
    return None


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    """Keyed by the schema's canonical JSON text: equal schemas share one validator, whichever dict holds them."""
    import jsonschema

    schema = json.loads(schema_text)
    validator_cls = jsonschema.validators.validator_for(schema)
    return validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)


@functools.lru_cache(maxsize=256)
def _fast_validator(schema_text: str) -> Any:
    """jsonschema-rs's validator for the schema, or None without the extra (or for a schema it cannot compile)."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    try:
        return jsonschema_rs.validator_for(json.loads(schema_text), validate_formats=True)
    except (ValueError, jsonschema_rs.ValidationError):
        return None
