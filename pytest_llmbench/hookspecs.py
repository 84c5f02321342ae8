"""The hooks a ``conftest.py`` or a plugin can implement: pytest-llmbench's documented contract.

Registered through ``pytest_addhooks``. Each hook also receives ``config`` (and, where one exists, the pytest
``item``); as everywhere in pluggy, an implementation names only the arguments it needs, so
``def pytest_llmbench_batch(batch): ...`` keeps working.

Where each runs matters under ``pytest -n``: ``build_request``, ``evaluate`` and ``result`` run in the worker
that sends the request; ``progress`` and ``batch`` on the controller; ``collect_metrics`` on the controller's
sampling thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import pytest

    from .batch import Batch
    from .collect.suite import TestCase
    from .result import TestResult
    from .session.progress import ExecutionProgress

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_llmbench_build_request(test_case: TestCase, request: dict[str, Any], config: pytest.Config) -> None:
    """Adjust the JSON body of ``test_case``'s request in place, just before it is sent.

    Runs in the process that sends the request (an xdist worker under ``-n``); what it sets is recorded as the
    result's ``request``, so never put credentials in the body::

        def pytest_llmbench_build_request(test_case, request):
            if test_case.category == "code":
                request["stop"] = ["\\n```"]
    """


@hookspec
def pytest_llmbench_evaluate(
    test_case: TestCase, result: TestResult, config: pytest.Config
) -> list[dict[str, Any]] | None:
    """Return extra checks for ``result`` as ``{"name", "passed", "expected", "detail"}`` dicts.

    Called after the built-in checks, with ``result.evaluation_result`` holding them. A failed check fails the
    item; a hook that raises or returns another shape becomes a failed check of its own, never a lost result.
    It may also set ``result.reasoning_score`` (0 to 1)::

        def pytest_llmbench_evaluate(test_case, result):
            if test_case.category == "medical_reasoning":
                cites = "contraindication" in result.response_text.lower()
                return [{"name": "mentions_contraindications", "passed": cites,
                         "expected": "a word on contraindications", "detail": result.response_text[:80]}]
    """


@hookspec
def pytest_llmbench_result(result: TestResult, item: pytest.Item, config: pytest.Config) -> None:
    """Post-process or forward one finished ``TestResult`` before it is reported and written.

    Runs in the process that ran ``item``; the result's files are written by the controller afterwards, so a
    field set here lands in them. It is also called for each request a hand-written test makes through
    ``llm_client`` (``item`` is that test, ``result.category`` is ``"llm_client"``)::

        def pytest_llmbench_result(result):
            result.performance_metrics["gpu_pool"] = "a100-east"
    """


@hookspec
def pytest_llmbench_progress(progress: ExecutionProgress, config: pytest.Config) -> None:
    """Receive a snapshot of the run's ``ExecutionProgress`` after each result arrives at the controller::

        def pytest_llmbench_progress(progress):
            with open("progress.jsonl", "a") as log:
                log.write(json.dumps(progress.to_dict()) + "\\n")
    """


@hookspec
def pytest_llmbench_batch(batch: Batch, config: pytest.Config) -> None:
    """Add or change fields of the batch record in place, on the controller, before it is written::

        def pytest_llmbench_batch(batch):
            batch["git_commit"] = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    """


@hookspec
def pytest_llmbench_collect_metrics(sample: dict[str, Any], config: pytest.Config) -> None:
    """Add custom fields to one hardware ``sample`` dict (``--llmbench-monitor``).

    Runs on the sampling thread every ``--llmbench-monitor-interval`` seconds: keep it quick; an exception is
    reported once as a monitoring problem and the sampling goes on::

        def pytest_llmbench_collect_metrics(sample):
            sample["queue_depth"] = read_queue_depth()
    """
