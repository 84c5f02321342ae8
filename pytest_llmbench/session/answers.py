"""The answers of a run on disk, for answer drift: from its journal (``results.jsonl``, every run of this version,
per-test files or not), else from its per-test result files (the rows name them).

A batch file keeps no answers (its rows would grow by every answer); the files beside it do.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..batch import Batch, Row
from ..metrics.drift import BaselineAnswers, key_of, sampling_of
from .journal import JOURNAL, JournalError, read_journal
from .storage import COMPLETION_SUFFIX, RESULT_SUFFIX

MAX_RESULT_BYTES = 64 << 20  # a per-test result file larger than this is not read


class NoAnswers(ValueError):
    """A run whose answers are not on disk: the message says why drift cannot be measured against it."""


def run_answers(folder: Path, batch: Batch, source: str) -> BaselineAnswers:
    """The answers of the run whose batch file (named ``source``) is in ``folder``. Raises NoAnswers."""
    batch_path = source
    rows = {key_of(row): row for row in batch.get("tests") or [] if isinstance(row, dict)}
    found = BaselineAnswers({}, rows, source=source)
    journal = folder / JOURNAL
    if journal.is_file():
        try:
            record = read_journal(journal)
        except (OSError, JournalError) as exc:
            raise NoAnswers(f"{journal}: {getattr(exc, 'strerror', None) or exc}") from None
        for entry in record.results.values():
            key = key_of(entry["row"])
            found.answers[key] = entry.get("answer") or ""
            found.sampling[key] = entry.get("sampling") or {}
    else:
        _from_result_files(folder, rows, found)
    if not found.answers:
        raise NoAnswers(f"{batch_path}: no answers beside it (neither {JOURNAL} nor per-test result files): answer "
                        "drift needs a baseline run by this version, or one with --llmbench-test-files all")
    return found


def _from_result_files(folder: Path, rows: dict[tuple[str, str], Row], found: BaselineAnswers) -> None:
    """An older run: each row's ``completion_file`` names its result file beside it."""
    root = folder.resolve()
    for key, row in rows.items():
        name = row.get("completion_file")
        if not isinstance(name, str) or not name.endswith(COMPLETION_SUFFIX):
            continue
        path = (folder / (name[:-len(COMPLETION_SUFFIX)] + RESULT_SUFFIX)).resolve()
        if root not in path.parents:  # a row naming a file outside its run folder
            continue
        try:
            if path.stat().st_size > MAX_RESULT_BYTES:
                continue
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and isinstance(result.get("response_text"), str):
            found.answers[key] = result["response_text"]
            found.sampling[key] = sampling_of(result.get("request"))
