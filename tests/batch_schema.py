"""Checking batch files against the JSON Schema the package ships (pytest_llmbench/batch_results.schema.json).

tests/conftest.py runs ``check_batches`` after every test over the folders the test made: every batch a session
writes during the test suite is validated. A batch file a test wrote by hand, as input for a reader, carries no
current ``schema_version`` and is left alone (the recorder always writes it), and so is a copy a test planted
outside the run folder its ``run.run_dir`` names.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from pytest_llmbench.batch import SCHEMA_VERSION


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(resources.files("pytest_llmbench").joinpath("batch_results.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(batch: Any) -> list[str]:
    """Each way ``batch`` breaks the schema, as "path: message"."""
    return [f"{error.json_path}: {error.message}" for error in sorted(validator().iter_errors(batch), key=str)]


def check_batches(folder: Path) -> int:
    """Validate every session-written batch file under ``folder``; raise AssertionError naming the first bad one.
    Returns how many were checked."""
    checked = 0
    for path in sorted(folder.rglob("batch_results_*.json")):
        try:
            batch = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a test's hostile or truncated input
            continue
        if not isinstance(batch, dict) or batch.get("schema_version") != SCHEMA_VERSION:
            continue
        run_dir = (batch.get("run") or {}).get("run_dir") if isinstance(batch.get("run"), dict) else None
        if isinstance(run_dir, str) and Path(run_dir).resolve() != path.parent.resolve():
            continue  # a copy a test planted elsewhere (hostile input for a reader), not a session's own file
        found = problems(batch)
        assert not found, f"{path} does not match batch_results.schema.json: {found[:3]}"
        checked += 1
    return checked
