"""The embedded model (llama.cpp) through the new APIs where it serves them: structured output constrained by a
schema (llama.cpp turns ``response_format``'s schema into a grammar) and validated, pooled as schema validity.

Tool calls are not tried here: the embedded server runs Gemma's chat format, which does not do function calling;
the tool-call checks are tested against servers that speak that shape exactly (tests/test_tool_calls.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from run_files import batch_of

from pytest_llmbench.session.embedded import cache_dir

pytestmark = [pytest.mark.real_llm, pytest.mark.timeout(900), pytest.mark.usefixtures("local_extra")]
USER_CACHE = cache_dir()  # read now: pytester points HOME at each test's folder

SCHEMA: dict[str, Any] = {"type": "object", "required": ["city", "country"], "additionalProperties": False,
                          "properties": {"city": {"type": "string", "maxLength": 40},
                                         "country": {"type": "string", "maxLength": 40}}}


def test_structured_output_from_the_embedded_model_validates(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_CACHE_DIR", str(USER_CACHE))
    suite = pytester.path / "structured.json"
    suite.write_text(json.dumps({"test_suite_id": "structured", "tests": [
        {"id": "capital", "name": "Capital as JSON", "category": "structured_output",
         "messages": [{"role": "user", "content": "Give the capital of France as JSON with keys city and country."}],
         "parameters": {"max_tokens": 48, "temperature": 0, "response_format": {"type": "json_object",
                                                                                 "schema": SCHEMA}},
         "expected": {"json_schema": SCHEMA}}]}))
    run = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "-p", "no:cacheprovider",
                                        "--llmbench-slo", "schema_valid=1", timeout=600)
    run.assert_outcomes(passed=1)
    batch = batch_of(pytester.path / "llmbench_results")
    assert batch["aggregate"]["schema_valid"] == 1.0 and batch["tests"][0]["schema_valid"] is True
