"""``--llmbench-resume``: which run to continue, whether the options allow it, and which recorded results count.

A resumed run is one run: its later sessions write into the same folder and journal, and its batch covers the
union. So a session may continue a run only under the options that decide what is measured (``MEASURED``), and a
sweep keeps only the levels that finished: a level that was cut is run again whole, since its statistics must come
from one uninterrupted phase.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..http.redact import Secrets
from .journal import JOURNAL, JournalError, Record, read_journal
from .run_folder import BATCH_GLOB, LATEST, latest_folder

if TYPE_CHECKING:
    from ..options import Settings

# The options that change what a test measures or how it is judged; the others (output, reports, monitoring,
# categories) may differ between the sessions of one run.
MEASURED = ("endpoint", "model", "suite", "stream", "no_eval", "judge_endpoint", "judge_model", "timeout", "retries",
            "retry_delay", "max_retry_wait", "retry_read_timeouts", "max_response_bytes", "connect_timeout",
            "concurrency", "request_rate", "burstiness", "repeat", "warmup", "duration", "ramp", "sweep", "seed")
REPLAY_MESSAGE_CHARS = 500


class ResumeError(ValueError):
    """A resume that cannot go ahead; the message names the folder and what is wrong."""


@dataclass(frozen=True)
class Recorded:
    """What a process needs to replay one recorded test without sending it: its outcome and why it failed."""

    passed: bool
    message: str


def resolve_run(given: str, output: Path) -> Path:
    """The run folder ``--llmbench-resume`` names: ``latest``, a run folder or its batch file. Raises ResumeError."""
    if given == LATEST and not Path(given).exists():
        found = latest_folder(output)
        if found is None:
            raise ResumeError(f"--llmbench-resume: no earlier run in {output} to resume")
        return found.resolve()
    path = Path(given)
    folder = path.parent if path.is_file() and path.match(BATCH_GLOB) else path
    if not folder.is_dir():
        raise ResumeError(f"--llmbench-resume {given}: no such run folder (pass a run folder such as "
                          f"{output / '20261129-173012'}, its batch file, or 'latest'; write --llmbench-resume=RUN "
                          f"when a test path follows)")
    return folder.resolve()


def load_record(folder: Path) -> Record:
    """The run's journal. Raises ResumeError naming what is missing or unreadable; nothing is written."""
    path = folder / JOURNAL
    if not path.is_file():
        has_batch = any(folder.glob(BATCH_GLOB))
        raise ResumeError(f"--llmbench-resume: {folder} has no {JOURNAL}" + (
            " (its batch file was written by a version without resume; run it again)" if has_batch
            else ": not a pytest-llmbench run folder"))
    try:
        return read_journal(path)
    except JournalError as exc:
        raise ResumeError(f"--llmbench-resume: {exc}") from None
    except OSError as exc:
        raise ResumeError(f"--llmbench-resume: cannot read {path}: {exc.strerror or exc}") from None


def measured_options(settings: Settings, suites: Iterable[Path], workers: int) -> dict[str, Any]:
    """The options a resume must match, as JSON values; suites by resolved path and content digest. The number
    of xdist workers counts only when it is the concurrency (no ``--llmbench-concurrency`` and no rate)."""
    options = {name: _plain(getattr(settings, name)) for name in MEASURED if name != "suite"}
    secrets = Secrets(settings.secrets())  # a URL may carry user:password@ or ?api_key=: the journal never does
    for name in ("endpoint", "judge_endpoint"):
        options[name] = options[name] and secrets.redact(options[name])
    options["suite"] = suite_digests(suites)
    if not settings.concurrency and settings.request_rate == "inf" and not settings.sweep:
        options["workers"] = workers
    return options


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def suite_digests(suites: Iterable[Path]) -> dict[str, str]:
    """Each suite file (every ``*.json`` in a named folder) and the SHA-256 of its bytes: an edited prompt is
    another test."""
    digests = {}
    for suite in suites:
        files = sorted(suite.rglob("*.json")) if suite.is_dir() else [suite]
        for path in files:
            try:
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digests[str(path)] = "unreadable"
    return digests


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per option that differs from the run's first session."""
    lines = []
    for name in sorted(recorded.keys() | now.keys()):
        old, new = recorded.get(name), now.get(name)
        if old != new:
            flag = "suite files (path: sha256)" if name == "suite" else \
                "xdist workers (-n)" if name == "workers" else f"--llmbench-{name.replace('_', '-')}"
            lines.append(f"{flag}: recorded {old!r}, now {new!r}")
    return lines


def resumable(recorded: dict[str, int], collected: Iterable[tuple[str, int]], sweep: bool) -> set[str]:
    """The node ids whose recorded result this session keeps (``recorded``: node id -> sweep level): those of
    collected tests, and in a sweep only the levels before the first one with a collected test left to run."""
    collected = list(collected)
    kept = {nodeid for nodeid, _ in collected if nodeid in recorded}
    unfinished = [phase for nodeid, phase in collected if nodeid not in recorded]
    if sweep and unfinished:
        kept = {nodeid for nodeid in kept if recorded[nodeid] < min(unfinished)}
    return kept


def replay_of(entry: dict[str, Any]) -> Recorded:
    """The outcome a recorded test shows again: passed, or failed with its recorded reason."""
    row = entry["row"]
    if row.get("passed"):
        return Recorded(True, "")
    failure = row.get("failure") or {}
    reasons = [row.get("error_message") or "", *(failure.get("checks") or []), *(failure.get("slo_misses") or [])]
    reason = "; ".join(r for r in reasons if r) or "failed"
    return Recorded(False, reason[:REPLAY_MESSAGE_CHARS])


def resumed_from(record: Record, kept: int) -> dict[str, Any]:
    """The batch's ``resumed_from``: each earlier session's start, results recorded and how it ended, and how many
    of those results this session kept (the rest were sent again)."""
    sessions = [{"started": s.get("started"), "results": s.get("results", 0),
                 "ended": (s.get("end") or {}).get("partial_reason") or ("finished" if s.get("end") else "killed")}
                for s in record.sessions]
    return {"sessions": sessions, "recorded": len(record.results), "kept": kept,
            "unreadable_lines": record.skipped_lines}
