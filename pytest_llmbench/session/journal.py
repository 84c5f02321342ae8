"""The run's durable record of finished tests, ``results.jsonl`` in its folder: one JSON line per recorded result.

The batch file is written once, at the end, and a run killed with SIGKILL (the OOM killer, a preempted node)
never writes it. The journal is what ``--llmbench-resume`` reads instead: a ``session`` line when a session starts
(its options, for the refusal of a resume under other ones), a ``result`` line as the controller records each test
(its batch row, per-chunk figures and answer, keyed by node id), an ``end`` line when a session ends with its
batch file. Lines are appended with one ``write`` each on an ``O_APPEND`` descriptor: a killed process loses none
that was written (the kernel holds them), and a reader skips a torn last line. ``fsync`` runs every
``FSYNC_EVERY`` lines or ``FSYNC_AFTER_S`` seconds and at the end, which guards against the machine itself going
down at the price of one ``fsync`` per batch of lines, not per test. The batches' ``fsync`` runs on a thread of its
own: on a busy disk one takes milliseconds to tens of milliseconds, and the controller, which records every test,
would wait for each (0.1-0.5 s over 2,000 quick tests here); the session's first and last lines are synced in line.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import Row
from ..result import dumps_strict

JOURNAL = "results.jsonl"
JOURNAL_SCHEMA = 1
FSYNC_EVERY = 64
FSYNC_AFTER_S = 1.0
MAX_LINE_BYTES = 64 << 20  # a line longer than this is not one this plugin wrote: skipped, never parsed
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class Journal:
    """Appends to ``<run folder>/results.jsonl``; a write that fails is kept in ``problem``, never raised (the
    results still reach the batch file)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL
        self.problem: str | None = None
        self._unsynced = 0
        self._synced_at = time.monotonic()
        self._fd_lock = threading.Lock()  # the syncing thread never syncs a descriptor closed (and reused) meanwhile
        self._sync_wanted = threading.Event()
        self._syncer: threading.Thread | None = None
        try:
            self._fd: int | None = os.open(self.path, _FLAGS, 0o666)
            if _ends_torn(self.path):  # a line cut by a crash: the next line starts on a line of its own
                os.write(self._fd, b"\n")
        except OSError as exc:
            self._fd = None
            self.problem = f"cannot open {self.path}: {exc.strerror or exc}"

    def session(self, started: str, options: dict[str, Any]) -> None:
        self._append({"kind": "session", "schema": JOURNAL_SCHEMA, "started": started, "options": options},
                     sync=True)

    def result(self, nodeid: str, phase: int, row: Row, chunks: dict[str, Any], answer: str,
               wall: tuple[float, float] | None, sampling: dict[str, Any]) -> None:
        """``sampling``: the request's temperature, seed ...: whether answer drift against this run means anything."""
        self._append({"kind": "result", "nodeid": nodeid, "phase": phase, "row": row, "chunks": chunks,
                      "answer": answer, "wall": wall, "sampling": sampling})

    def end(self, partial_reason: str | None, batch: str | None) -> None:
        self._append({"kind": "end", "partial_reason": partial_reason, "batch": batch}, sync=True)

    def _append(self, entry: dict[str, Any], *, sync: bool = False) -> None:
        if self._fd is None:
            return
        try:
            data = (dumps_strict(entry) + "\n").encode("utf-8", "backslashreplace")
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            self._unsynced += 1
            if sync:
                os.fsync(self._fd)
            elif self._unsynced >= FSYNC_EVERY or time.monotonic() - self._synced_at >= FSYNC_AFTER_S:
                self._sync_soon()
            else:
                return
            self._unsynced, self._synced_at = 0, time.monotonic()
        except (OSError, ValueError) as exc:
            self.problem = f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}"
            self.close()

    def close(self) -> None:
        with self._fd_lock:
            fd, self._fd = self._fd, None
        self._sync_wanted.set()  # the syncing thread sees no descriptor and ends
        if fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    def _sync_soon(self) -> None:
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, name="llmbench-journal-sync", daemon=True)
            self._syncer.start()
        self._sync_wanted.set()

    def _sync_loop(self) -> None:
        while True:
            self._sync_wanted.wait()
            self._sync_wanted.clear()
            with self._fd_lock:
                if self._fd is None:
                    return
                with contextlib.suppress(OSError):  # a failing disk shows in the next write, which says why
                    os.fsync(self._fd)


@dataclass
class Record:
    """What a journal holds: its sessions in order, the latest result line per node id, and what was unreadable."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped_lines: int = 0

    @property
    def finished(self) -> bool:
        """The last session ended with a batch file, not cut short."""
        last = self.sessions[-1] if self.sessions else {}
        end = last.get("end")
        return isinstance(end, dict) and end.get("partial_reason") is None and bool(end.get("batch"))


class JournalError(ValueError):
    """A journal that cannot be resumed from: newer schema, no session line."""


def read_journal(path: Path) -> Record:
    """Read a journal, skipping lines that are torn or not ours (counted). Raises OSError, JournalError."""
    record = Record()
    session: dict[str, Any] | None = None
    with open(path, "rb") as stream:
        for raw in stream:
            entry = _parse(raw) or {}
            kind = entry.get("kind")
            if kind == "session":
                if not isinstance(entry.get("schema"), int) or entry["schema"] > JOURNAL_SCHEMA:
                    raise JournalError(f"{path} was written by a newer pytest-llmbench (journal schema "
                                       f"{entry.get('schema')!r}, this version reads {JOURNAL_SCHEMA})")
                session = {**entry, "results": 0}
                record.sessions.append(session)
            elif kind == "result" and session is not None and _is_result(entry):
                record.results[entry["nodeid"]] = {**entry, "session": len(record.sessions) - 1}
                session["results"] += 1
            elif kind == "end" and session is not None:
                session["end"] = entry
            else:
                record.skipped_lines += 1
    if not record.sessions:
        raise JournalError(f"{path} holds no session line: not a run's journal")
    return record


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        if stream.tell() == 0:
            return False
        stream.seek(-1, os.SEEK_END)
        return stream.read(1) != b"\n"


def _parse(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_LINE_BYTES or not raw.endswith(b"\n"):  # a torn last line has no newline
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _is_result(entry: dict[str, Any]) -> bool:
    return (isinstance(entry.get("nodeid"), str) and isinstance(entry.get("row"), dict)
            and isinstance(entry.get("phase"), int) and isinstance(entry.get("chunks", {}), dict)
            and isinstance(entry.get("answer", ""), str))
