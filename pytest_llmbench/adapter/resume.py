"""What a session takes from earlier runs: ``--llmbench-resume`` and the baseline's answers for drift.

``--llmbench-resume`` in pytest: the controller opens the run's journal and checks the options; every process
(the controller alone, or each xdist worker from its workerinput) marks the collected items whose results are
recorded, so that they show their recorded outcome instead of sending their request.

Recorded items stay items: pytest counts them as passed or failed (the exit status, ``--lf`` and JUnit XML stay
true to the run), ``-k`` and ``--llmbench-category`` select among them as usual, and the load dispatcher never
sends them. The controller takes their rows from the journal, not from their reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..metrics.drift import BaselineAnswers
from ..metrics.gates import Gates
from ..options import Settings
from ..session.answers import NoAnswers, run_answers
from ..session.journal import Journal, Record
from ..session.resume import (
    Recorded,
    ResumeError,
    differences,
    load_record,
    measured_options,
    replay_of,
    resolve_run,
    resumable,
    resumed_from,
)
from .internals import worker_input
from .items import LOAD_PLAN_KEY, SUITES_KEY, LLMBenchItem
from .scheduling import phase_of

WORKERINPUT_KEY = "llmbench_resume"


@dataclass
class Replays:
    """What every process needs to mark its items: each recorded node id's sweep level and outcome."""

    phases: dict[str, int]
    outcomes: dict[str, list[Any]]  # node id -> [passed, message]
    sweep: bool

    def to_workerinput(self) -> dict[str, Any]:
        return {"phases": self.phases, "outcomes": self.outcomes, "sweep": self.sweep}

    def keep(self, collected: list[tuple[str, int]]) -> set[str]:
        return resumable(self.phases, collected, self.sweep)


REPLAYS_KEY = pytest.StashKey[Replays]()


@dataclass
class Resume:
    """The controller's side: the run folder, its journal, and the results this session keeps."""

    folder: Path
    record: Record
    differences: list[str]
    kept: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, config: pytest.Config, settings: Settings, output: Path, suites: tuple[Path, ...]) -> Resume:
        """Read the run and check the options. Raises pytest.UsageError with the differences listed."""
        try:
            folder = resolve_run(str(settings.resume), output)
            record = load_record(folder)
        except ResumeError as exc:
            raise pytest.UsageError(str(exc)) from None
        now = measured_options(settings, suites, config.getoption("numprocesses", None) or 0)
        found = differences(record.sessions[0].get("options") or {}, now)
        if found and not settings.resume_force:
            raise pytest.UsageError(
                f"llmbench: --llmbench-resume {folder}: these options differ from the run's, and they change what is "
                "measured:\n  " + "\n  ".join(found) + "\nrun with the run's options, or add --llmbench-resume-force")
        resume = cls(folder, record, found)
        config.stash[REPLAYS_KEY] = resume.replays(config)
        return resume

    def stop_if_finished(self) -> None:
        """A run that ended whole is not run again: said, nothing sent, status 0."""
        if self.record.finished:
            pytest.exit(f"llmbench: the run in {self.folder} finished ({len(self.record.results)} results recorded): "
                        "nothing to resume", returncode=pytest.ExitCode.OK)

    def replays(self, config: pytest.Config) -> Replays:
        outcomes = {nodeid: [replay.passed, replay.message] for nodeid, replay in
                    ((nodeid, replay_of(entry)) for nodeid, entry in self.record.results.items())}
        return Replays({nodeid: entry["phase"] for nodeid, entry in self.record.results.items()}, outcomes,
                       bool(config.stash[LOAD_PLAN_KEY].sweep_kind))

    def keep_from_ids(self, config: pytest.Config, ids: list[str]) -> list[dict[str, Any]]:
        """Under xdist: the entries kept, judged from the node ids a worker collected (as the workers judge)."""
        plan = config.stash[LOAD_PLAN_KEY]
        labels = {level.label: n for n, level in enumerate(plan.levels)} if plan.sweep_kind else {}
        return self._take(config.stash[REPLAYS_KEY].keep([(nodeid, phase_of(nodeid, labels)) for nodeid in ids]))

    def keep_from_items(self, items: list[LLMBenchItem]) -> list[dict[str, Any]]:
        return self._take({item.nodeid for item in items if item.resumed})

    def _take(self, kept: set[str]) -> list[dict[str, Any]]:
        self.kept = kept
        return [self.record.results[nodeid] for nodeid in sorted(kept)]

    def section(self) -> dict[str, Any]:
        return {**resumed_from(self.record, len(self.kept)), "run_dir": str(self.folder),
                "option_differences": self.differences}


def replays_for_worker(config: pytest.Config) -> None:
    """In an xdist worker: the controller's replays, from the workerinput."""
    given = (worker_input(config) or {}).get(WORKERINPUT_KEY)
    if given:
        config.stash[REPLAYS_KEY] = Replays(given["phases"], given["outcomes"], given["sweep"])


def mark_resumed(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each selected item whose result is kept its recorded outcome (after every deselection)."""
    replays = config.stash.get(REPLAYS_KEY, None)
    if replays is None:
        return
    ours = [item for item in items if isinstance(item, LLMBenchItem)]
    kept = replays.keep([(item.nodeid, item.phase) for item in ours])
    for item in ours:
        if item.nodeid in kept:
            passed, message = replays.outcomes[item.nodeid]
            item.resumed = Recorded(bool(passed), str(message))


def open_journal(config: pytest.Config, settings: Settings, folder: Path, started: str) -> Journal:
    """The run's journal, with this session's line: its start and the options a later resume must match."""
    journal = Journal(folder)
    suites = config.stash[SUITES_KEY]
    journal.session(started, measured_options(settings, suites, config.getoption("numprocesses", None) or 0))
    return journal


def baseline_answers(gates: Gates, warnings: list[str]) -> BaselineAnswers | None:
    """The ``--llmbench-compare`` baseline's answers, for answer drift; without them drift is a warning, or a usage
    error when ``--llmbench-drift-fail`` asks for a gate that could not be checked."""
    if gates.baseline is None or gates.baseline_path is None:
        return None
    try:
        return run_answers(gates.baseline_path.parent, gates.baseline, str(gates.baseline_path))
    except NoAnswers as exc:
        if gates.drift_fail is not None:
            raise pytest.UsageError(f"llmbench: --llmbench-drift-fail: {exc}") from None
        warnings.append(f"answer drift not measured: {exc}")
        return None
