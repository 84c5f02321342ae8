"""Writing suite files for the suite tests: shared by test_suite.py and test_suite_json.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_stub import write_suite

from pytest_llmbench.collect.suite import SUITE_SUFFIX, load_suite
from pytest_llmbench.exceptions import SuiteError


def prompt_test(**fields: Any) -> dict[str, Any]:
    return {"id": "t1", "name": "Test one", "category": "general", "prompt": "Hello", **fields}


def chat_test(**fields: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Hi"}]
    return {"id": "c1", "name": "Chat one", "category": "chat", "messages": messages, **fields}


def write(tmp_path: Path, content: Any, name: str = "suite" + SUITE_SUFFIX) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def raw_suite(tmp_path: Path, *tests: Any, **top: Any) -> Path:
    """A suite file holding exactly ``tests``, for the validation tests: write_suite without completing them."""
    return write_suite(tmp_path, tests, complete=False, **top)


def error_of(path: Path, **kwargs: Any) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load_suite(path, **kwargs)
    return info.value


def problems_of(tmp_path: Path, *tests: Any, **top: Any) -> list[str]:
    return error_of(raw_suite(tmp_path, *tests, **top)).problems
