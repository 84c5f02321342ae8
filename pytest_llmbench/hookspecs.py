"""Hook specifications that conftest.py files and plugins can implement.

Registered through ``pytest_addhooks``; each one is documented with an example in the README.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_llmbench_build_request(test_case: Any, request: dict[str, Any]) -> None:
    """Adjust the JSON body of ``test_case``'s request in place, just before it is sent.

    Runs in the process that sends the request (an xdist worker under ``-n``).
    """


@hookspec
def pytest_llmbench_evaluate(test_case: Any, result: Any) -> list[dict[str, Any]] | None:
    """Return extra checks for ``result`` as ``{"name", "passed", "expected", "detail"}`` dicts.

    May also set ``result.reasoning_score``. A failed check fails the item.
    """


@hookspec
def pytest_llmbench_result(result: Any) -> None:
    """Post-process or forward one finished ``TestResult`` before it is reported and written."""


@hookspec
def pytest_llmbench_progress(progress: Any) -> None:
    """Receive the ``ExecutionProgress`` after each result arrives at the controller."""


@hookspec
def pytest_llmbench_batch(batch: dict[str, Any]) -> None:
    """Add or change fields of the batch record in place before it is written."""


@hookspec
def pytest_llmbench_collect_metrics(sample: dict[str, Any]) -> None:
    """Add custom fields to one hardware ``sample`` dict (called on the sampling thread)."""
