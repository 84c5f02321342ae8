"""The report's "What changed" section: answers beside the baseline's, most changed first, as word-level diffs.

A run made with ``--llmbench-compare`` carries its ``answer_changes``; ``llmbench-report A B`` measures the same
between the first and the last batch from the answers kept beside them (session/answers.py). Diff texts are
template values: Jinja escapes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...batch import Batch
from ..answers import NoAnswers, run_answers

ROWS_SHOWN = 100


def what_changed(batches: list[tuple[Batch, str, Path | None]]) -> dict[str, Any] | None:
    """The section's view, or None when there is nothing to compare (no baseline, or no answers on disk)."""
    last = batches[-1][0]
    if len(batches) == 1 or last.get("drift"):
        drift, changes = last.get("drift"), last.get("answer_changes")
        return _view(drift, changes, None) if isinstance(drift, dict) and isinstance(changes, list) else None
    (first, first_label, first_dir), (_, last_label, last_dir) = batches[0], batches[-1]
    if first_dir is None or last_dir is None:
        return None
    try:
        before = run_answers(first_dir, first, first_label)
        after = run_answers(last_dir, last, last_label)
    except NoAnswers as exc:
        return _view(None, [], str(exc))
    rows = []
    for row in last.get("tests") or []:
        if isinstance(row, dict) and not row.get("llm_client"):
            key = (str(row.get("test_id")), str(row.get("model") or ""))
            answer = after.answers.get(key)
            drift = None if answer is None else before.compare(row, answer, after.sampling.get(key) or {})
            rows.append({**row, "answer_drift": drift})
    return _view(before.summary(rows, None), before.changes(rows), None)


def _view(drift: dict[str, Any] | None, changes: list[dict[str, Any]], problem: str | None) -> dict[str, Any]:
    return {
        "summary": drift, "problem": problem, "more": max(len(changes) - ROWS_SHOWN, 0),
        "rows": [{**change, "similarity": f"{change.get('similarity') or 0:.2f}",
                  "diff": [seg for seg in change.get("diff") or [] if isinstance(seg, list) and len(seg) == 2]}
                 for change in changes[:ROWS_SHOWN] if isinstance(change, dict)],
    }
