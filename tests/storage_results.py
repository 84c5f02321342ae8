"""A result record to write, for the storage tests."""

from __future__ import annotations

from typing import Any

from pytest_llmbench.result import TestResult


def make_result(test_id: str = "t1", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "test_id": test_id, "test_name": f"name {test_id}", "success": True, "response_text": "Hello there.",
        "execution_time": 1.25, "prompt_tokens": 12, "completion_tokens": 30, "tokens_per_second": 24.0,
        "model": "tiny-model", "category": "greeting", "attempts": 1, "request": {"prompt": "Say hello"},
    }
    values.update(overrides)
    return TestResult(**values).to_dict()
