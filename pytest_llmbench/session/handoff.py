"""How a result crosses from the process that ran the test to the controller.

From an xdist worker it travels as a JSON string on the report: execnet carries only built-in types, and
pytest copies a report's ``__dict__`` when it serializes it, so one string attribute arrives intact. In the
controller's own process (no ``-n``) it waits in the controller's inbox under the report's node id instead,
so the hot path pays for no JSON round trip and the report stays small for any plugin that serializes it.
"""

from __future__ import annotations

import json
from typing import Any

from ..result import TestResult, dumps_strict

ATTRIBUTE = "llmbench"

Inbox = dict[str, dict[str, Any]]


def attach(report: Any, result: TestResult, *, file_stem: str, subdir: str | None,
           window: tuple[float, float] | None, inbox: Inbox | None) -> None:
    """Hand the result on: into ``inbox`` when the controller shares this process, else onto the report."""
    payload = {"result": result.to_dict(), "file_stem": file_stem, "subdir": subdir, "window": window}
    if inbox is None:
        setattr(report, ATTRIBUTE, dumps_strict(payload))
    else:
        inbox[report.nodeid] = payload


def payload_of(report: Any, inbox: Inbox) -> dict[str, Any] | None:
    raw = getattr(report, ATTRIBUTE, None)
    if raw:
        payload: dict[str, Any] = json.loads(raw)
        return payload
    return inbox.pop(report.nodeid, None) if report.when == "call" else None


def release(report: Any) -> None:
    if getattr(report, ATTRIBUTE, None) is not None:
        setattr(report, ATTRIBUTE, None)


def is_llmbench_nodeid(nodeid: str) -> bool:
    """True for ids of JSON suite tests: our collector makes the items inside ``.json`` files; a broken suite's
    single error item is not a test of the run."""
    return nodeid.split("::", 1)[0].endswith(".json") and not nodeid.endswith("::suite_error")
