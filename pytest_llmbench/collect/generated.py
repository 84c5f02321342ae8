"""A suite's workload as test cases: its requests, with the suite's and the workload's defaults merged in.

Kept apart from suite.py (which checks hand-written tests) but built with the same checks of parameters,
expected and slo, so that a workload's sections fail the way a test's do.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..exceptions import SuiteError
from .case import TestCase
from .sections import SECTIONS, Problems, merged, section, short
from .suite_json import read_suite_json
from .workload import generate, replays
from .workload.spec import Request, Workload, check_workload, shape_parameters


def workload_cases(path: Path, raw: Any, defaults: dict[str, dict[str, Any]], suite_id: str, first: int,
                    problems: Problems) -> list[TestCase | None]:
    """The workload's requests as test cases, after the suite's own tests; the workload's parameters, expected
    and slo apply to each (over the suite's defaults), a request's own token counts over both."""
    workload = check_workload(raw, path, problems.add)
    if workload is None or problems.lines:
        return []
    own = {key: section(workload.raw, key, problems, prefix="workload.") for key in SECTIONS}
    requests = generate(workload, problems.add)
    if problems.lines:
        return []
    combined = {key: merged(defaults, own, key) for key in SECTIONS}
    copies = {key: _copier(values) for key, values in combined.items()}
    return [_generated(workload, request, combined, copies, suite_id, first + n) for n, request in enumerate(requests)]


def _generated(workload: Workload, request: Request, combined: dict[str, dict[str, Any]],
               copies: dict[str, Callable[[dict[str, Any]], dict[str, Any]]], suite_id: str, index: int) -> TestCase:
    prompt, messages = request.prompt, request.messages
    if prompt is None and messages is None and not request.turns:  # built when sent: a placeholder of the API
        prompt, messages = ("", None) if workload.api == "completions" else (None, ({"role": "user", "content": ""},))
    shaped = shape_parameters(request.shape) if request.shape is not None else {}
    return TestCase(
        id=request.id, name=request.id, category=request.category, prompt=prompt,
        messages=messages if messages is not None or prompt is not None else (),
        parameters={**copies["parameters"](combined["parameters"]), **(request.parameters or {}), **shaped},
        stream=workload.raw.get("stream"), expected=copies["expected"](combined["expected"]) or None,
        slo=copies["slo"](combined["slo"]) or None, index=index, suite_id=suite_id, shape=request.shape,
        turns=request.turns, think_time_s=request.think_time_s, send_at_s=request.send_at_s,
        metadata={"source": request.where} if request.where else None)


def _copier(values: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """How each test gets its own copy of ``values``: shallow when every value is a plain one (a deep copy per
    test was a quarter of the time 100,000 generated tests took to collect)."""
    if all(isinstance(value, (str, int, float, bool, type(None))) for value in values.values()):
        return dict
    return copy.deepcopy


def clashing_ids(cases: list[TestCase | None], problems: Problems) -> None:
    seen: set[str] = set()
    for case in cases:
        if case is not None and case.id in seen:
            problems.add(f"the workload's test id '{short(case.id)}' is also a test's id in this suite")
        elif case is not None:
            seen.add(case.id)


def replays_any(paths: Iterable[Path], max_bytes: int) -> bool:
    """Whether a suite among ``paths`` (files, or folders of ``*.json``) replays a trace; one that cannot be read
    is left to collection, which reports it."""
    for path in paths:
        for candidate in sorted(path.glob("*.json")) if path.is_dir() else [path]:
            try:
                if candidate.suffix == ".json" and replays(read_suite_json(candidate, max_bytes)):
                    return True
            except SuiteError:
                continue
    return False
