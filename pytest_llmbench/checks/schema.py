"""JSON Schema validation of answers and tool-call arguments, with the ``jsonschema`` package.

A validator is built once per schema and kept: a load run checks the same schema on every answer, and building
one (the meta-schema lookup, format checkers) costs more than validating a small answer.
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

    validator = _validator(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    return f"{error.json_path}: {excerpt(error.message, context=120)}"


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is no JSON Schema, or None: suites are checked with this before anything is sent."""
    if not isinstance(schema, (dict, bool)):
        return NOT_A_SCHEMA
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)  # type: ignore[arg-type]  # bool is one too
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
