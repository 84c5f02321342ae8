"""How a result crosses from the process that ran the test to the controller: a JSON string on the report.

execnet (pytest-xdist's channel) carries only built-in types, and pytest copies a report's ``__dict__``
when it serializes it, so one string attribute travels intact with or without ``-n``.
"""

from __future__ import annotations

import json
from typing import Any

from .result import TestResult, dumps_strict

ATTRIBUTE = "llmbench"


def attach(report: Any, result: TestResult, *, file_stem: str, subdir: str | None,
           window: tuple[float, float] | None) -> None:
    payload = {"result": result.to_dict(), "file_stem": file_stem, "subdir": subdir, "window": window}
    setattr(report, ATTRIBUTE, dumps_strict(payload))


def payload_of(report: Any) -> dict[str, Any] | None:
    raw = getattr(report, ATTRIBUTE, None)
    return json.loads(raw) if raw else None


def release(report: Any) -> None:
    if getattr(report, ATTRIBUTE, None) is not None:
        setattr(report, ATTRIBUTE, None)


def is_llmbench_nodeid(nodeid: str) -> bool:
    """True for ids of JSON suite tests: our collector makes the items inside ``.json`` files; a broken suite's
    single error item is not a test of the run."""
    return nodeid.split("::", 1)[0].endswith(".json") and not nodeid.endswith("::suite_error")
