"""The run journal's durability work stays off the thread that records every test."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import cast

import pytest

from pytest_llmbench.batch import Row
from pytest_llmbench.session.journal import FSYNC_EVERY, JOURNAL, Journal, read_journal


def test_the_journal_syncs_its_batches_on_a_thread_of_its_own_and_keeps_every_line(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    synced_by: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the real call, noting which thread made it
        synced_by.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal = Journal(tmp_path)
    journal.session("2026-12-07T00:00:00+00:00", {})
    for n in range(3 * FSYNC_EVERY):
        journal.result(f"s.json::t{n}", 0, cast(Row, {"test_id": f"t{n}"}), {}, "an answer", None, {})
    journal.end(None, "batch_results.json")
    syncer = next(t for t in threading.enumerate() if t.name == "llmbench-journal-sync")
    journal.close()
    syncer.join(timeout=10)

    recording = threading.current_thread().name
    assert synced_by.count(recording) == 3  # the session line, the end line and the close: in line
    assert "llmbench-journal-sync" in synced_by  # every batch of lines between them: on the syncing thread
    assert not syncer.is_alive()  # it ends with the journal
    record = read_journal(tmp_path / JOURNAL)
    assert len(record.results) == 3 * FSYNC_EVERY and record.finished
