"""How a result crosses from the process that ran the test to the controller.

From an xdist worker they travel as a JSON string on the report: execnet carries only built-in types, and
pytest copies a report's ``__dict__`` when it serializes it, so one string attribute arrives intact. In the
controller's own process (no ``-n``) they wait in the controller's inbox under the report's node id instead,
so the hot path pays for no JSON round trip and the report stays small for any plugin that serializes it.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..result import TestResult, dumps_strict

ATTRIBUTE = "llmbench"


HOST = socket.gethostname()
_WALL_OFFSET = time.time() - time.monotonic()  # this process's monotonic clock as Unix time


@dataclass
class Delivery:
    """One finished test on its way to the controller: the result, where its files go, and where and when it ran
    (host, xdist worker, sweep level, the request's window as Unix times for the run's timeline)."""

    result: TestResult
    file_stem: str
    subdir: str | None = None
    window: tuple[float, float] | None = None  # monotonic start and end of the item's request (hardware samples)
    phase: int = 0  # the sweep level's index
    worker: str | None = None  # the xdist worker id; None in the controller's own process
    host: str = HOST
    wall: tuple[float, float] | None = None  # the window as Unix times, taken where it was measured
    in_test: bool = False  # one of the requests of a hand-written test (llm_client), not an llmbench item
    # The endpoint a worker found for itself (hand-written tests alone under -n; ``Endpoint.to_workerinput`` and
    # the embedded server's ``log``), so that the controller can say what the run tested and keep the log.
    endpoint: dict[str, Any] | None = None
    nodeid: str | None = None  # the suite item's node id: its key in the run's journal (session/journal.py)
    judged: tuple[float, float] | None = None  # monotonic, when an LLM judge graded the answer: not the run's time
    label: str | None = None  # the test as its node id names it, t01[c16-r3]; None: its test id says it all

    def __post_init__(self) -> None:
        if self.wall is None and self.window is not None:
            self.wall = (self.window[0] + _WALL_OFFSET, self.window[1] + _WALL_OFFSET)

    def to_json(self) -> str:
        return dumps_strict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result.to_dict(), "file_stem": self.file_stem, "subdir": self.subdir,
                "window": self.window, "phase": self.phase, "worker": self.worker, "host": self.host,
                "wall": self.wall, "in_test": self.in_test, "endpoint": self.endpoint, "nodeid": self.nodeid,
                "judged": self.judged, "label": self.label}

    @classmethod
    def from_json(cls, raw: str) -> Delivery:
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        window, wall, judged = data.get("window"), data.get("wall"), data.get("judged")
        return cls(TestResult.from_dict(data["result"]), data["file_stem"], data.get("subdir"),
                   tuple(window) if window else None, phase=data.get("phase") or 0, worker=data.get("worker"),
                   host=data.get("host") or "", wall=tuple(wall) if wall else None,
                   in_test=bool(data.get("in_test")), endpoint=data.get("endpoint"), nodeid=data.get("nodeid"),
                   judged=tuple(judged) if judged else None, label=data.get("label"))


Inbox = dict[str, list[Delivery]]


def attach(report: Any, deliveries: list[Delivery], inbox: Inbox | None) -> None:
    """Hand the results on: into ``inbox`` when the controller shares this process, else onto the report."""
    if not deliveries:
        return
    if inbox is None:
        setattr(report, ATTRIBUTE, dumps_strict([delivery.to_dict() for delivery in deliveries]))
    else:
        inbox[report.nodeid] = deliveries


def deliveries_of(report: Any, inbox: Inbox) -> list[Delivery]:
    """The results a report brings: one for a suite item, any number for a hand-written test's phase."""
    raw = getattr(report, ATTRIBUTE, None)
    if raw:
        return [Delivery.from_dict(data) for data in json.loads(raw)]
    return inbox.pop(report.nodeid, [])


def release(report: Any) -> None:
    if getattr(report, ATTRIBUTE, None) is not None:
        setattr(report, ATTRIBUTE, None)


def is_llmbench_nodeid(nodeid: str) -> bool:
    """True for ids of JSON suite tests: our collector makes the items inside ``.json`` files; a broken suite's
    single error item is not a test of the run."""
    return nodeid.split("::", 1)[0].endswith((".json", ".jsonl")) and not nodeid.endswith("::suite_error")
