"""pytest collection: a suite file becomes a ``SuiteFile`` whose tests become ``LLMBenchItem``s.

plugin.py registers this module as a plugin: its two ``pytest_*`` functions are llmbench's collection hooks."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..collect.suite import SUITE_SUFFIX, TestCase, load_suite
from ..exceptions import SuiteError
from ..options import Settings
from ..result import TestResult
from ..runner import Answered, Runner, add_failed_check, failure_message
from ..session.handoff import Delivery
from ..session.load.plan import LoadPlan
from ..session.resume import Recorded
from ..session.storage import assign_stems
from ..textsafe import escape_for_terminal, escape_node_name
from .internals import worker_id

# Set by session/process.py; items read them from the stash so that pytest's fixtures stay out of item setup.
SETTINGS_KEY = pytest.StashKey[Settings]()
SUITES_KEY = pytest.StashKey[tuple[Path, ...]]()  # the suites named by --llmbench-suite or the ini file, resolved
RUNNER_KEY = pytest.StashKey[Callable[[], Runner]]()  # this process's runner, built on first use
LOAD_PLAN_KEY = pytest.StashKey[LoadPlan]()
# In a load run, the driver's answer for an item whose request it sent ahead (adapter/driver.py), else None
SENT_AHEAD_KEY = pytest.StashKey[Callable[["LLMBenchItem"], "list[Answered] | None"]]()
MARKER = "llmbench"


class LLMBenchFailure(Exception):
    """A test's own failure (HTTP, answer check, SLO): shown as its short message, not a traceback."""


class SuiteFile(pytest.File):
    """A JSON suite. A broken one becomes a single erroring item, so the rest of the session still runs."""

    @classmethod
    def for_path(cls, parent: pytest.Collector | pytest.Session, path: Path) -> SuiteFile:
        """The suite's collector. Inside the root folder its node id is pytest's own (the path relative to the
        root); outside it, pytest would give an empty file part (``::test``), so the id is the file's absolute
        POSIX path: never empty, distinct for distinct files, the same in every xdist worker."""
        try:
            path.resolve().relative_to(parent.config.rootpath.resolve())
        except ValueError:
            return cls.from_parent(parent, path=path, nodeid=path.resolve().as_posix())
        return cls.from_parent(parent, path=path)

    def collect(self) -> Iterator[pytest.Item]:
        settings = self.config.stash[SETTINGS_KEY]
        try:
            suite = load_suite(self.path, max_bytes=settings.max_suite_bytes)
        except SuiteError as exc:
            yield SuiteErrorItem.from_parent(self, name="suite_error", message=str(exc))
            return
        models: tuple[str | None, ...] = tuple(dict.fromkeys(settings.model)) if len(settings.model) > 1 else (None,)
        plan = self.config.stash[LOAD_PLAN_KEY]
        named: dict[str, str] = {}
        for case in suite.tests:
            for model in models:
                for phase in range(len(plan.levels)):
                    for repeat in range(plan.repeat):
                        param = "-".join(p for p in (model, plan.param(phase, repeat)) if p)
                        # pytest prints node ids as they are: escaped, but never two alike
                        name = escape_node_name(f"{case.id}[{param}]" if param else case.id)
                        if named.setdefault(name, case.id) is not case.id:
                            raise self.CollectError(f"{self.path}: tests {named[name]!r} and {case.id!r} would "
                                                    f"share the node id {self.nodeid}::{name}; give them distinct ids")
                        yield LLMBenchItem.from_parent(self, name=name, case=case, model=model, phase=phase,
                                                       repeat=repeat, load_param=plan.param(phase, repeat))


class SuiteErrorItem(pytest.Item):
    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.add_marker(MARKER)

    def runtest(self) -> None:
        raise LLMBenchFailure(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return _printable(str(excinfo.value))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"invalid llmbench suite {self.path.name}"


class LLMBenchItem(pytest.Item):
    """One JSON test (for one model). Its ``TestResult`` travels to the controller on the report."""

    def __init__(self, *, case: TestCase, model: str | None, phase: int = 0, repeat: int = 0,
                 load_param: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.model = model
        self.phase = phase  # the sweep level's index (0 without a sweep)
        self.repeat = repeat  # which repetition (--llmbench-repeat), from 0
        self.load_param = load_param  # "c16-r3": part of the node id and of the file name
        self.result: TestResult | None = None  # a conversation's last turn; the turns before it in ``earlier``
        self.earlier: list[Answered] = []
        self.window: tuple[float, float] | None = None  # the request's own start and end (monotonic)
        self.judged: tuple[float, float] | None = None  # when an LLM judge graded its answer
        self.file_stem: str | None = None  # assigned for the whole run by assign_file_stems()
        self.resumed: Recorded | None = None  # its outcome recorded by an earlier session of the run (resume.py)
        self.add_marker(MARKER)
        self.extra_keyword_matches.update({case.id, case.name, case.category})

    @property
    def param(self) -> str:
        """Which model, sweep level and repetition of its test this item is: ``m-c16-r3`` (empty: the only one)."""
        return "-".join(part for part in (self.model, self.load_param) if part)

    @property
    def label(self) -> str | None:
        """The test as its node id names it, without the file: ``t01[m-c16-r3]`` (None when that is its id)."""
        return f"{self.case.id}[{self.param}]" if self.param else None

    @property
    def output_subdir(self) -> str | None:
        return self.model

    def delivery(self, result: TestResult, window: tuple[float, float] | None) -> Delivery:
        """The result on its way to the controller, with where its files go and where and when it ran (a
        conversation's turns each in files of their own)."""
        stem = self.file_stem or self.case.id
        return Delivery(result, stem if result.turn is None else f"{stem}-turn{result.turn}", self.output_subdir,
                        window, phase=self.phase, worker=worker_id(self.config), nodeid=self.nodeid,
                        judged=self.judged, label=self.label)

    def runtest(self) -> None:
        if self.resumed is not None:  # recorded by an earlier session of this run: shown again, never sent
            if not self.resumed.passed:
                raise LLMBenchFailure(f"resumed: {self.resumed.message}")
            return
        runner = self.config.stash[RUNNER_KEY]()  # built on first use, before the item's clock starts
        sent_ahead = self.config.stash.get(SENT_AHEAD_KEY, None)
        started = time.monotonic()
        answered: list[Answered] = []
        try:
            answered = (sent_ahead(self) if sent_ahead is not None else None) or []  # waits for this item's own
            if not answered:
                answered = runner.send_all(self.case, self.model)
            grading = time.monotonic()
            answered = runner.finish_answers(self.case, answered)  # checks and a judge: not the request's time
            if any((result.evaluation_result or {}).get("judge") for result, _ in answered):
                self.judged = (grading, time.monotonic())
        except Exception as exc:  # noqa: BLE001 - MemoryError, a bug: the test fails with its files, never lost
            window = answered[-1][1] if answered else (started, time.monotonic())
            answered = [(runner.failed(self.case, self.model, "running the test", exc), window)]
        self.earlier = answered[:-1]
        self.result, self.window = answered[-1]
        messages = []
        for result, _ in answered:  # one request, or a conversation's turns
            try:
                self.config.hook.pytest_llmbench_result(result=result, item=self, config=self.config)
            except Exception as exc:  # noqa: BLE001 - a conftest bug fails this test's check, the result is kept
                add_failed_check(result, "pytest_llmbench_result", f"raised {type(exc).__name__}: {exc}")
            messages.append(failure_message(result, self.case))
        for name in ("execution_time", "completion_tokens", "tokens_per_second", "attempts"):
            self.user_properties.append((name, getattr(self.result, name)))
        if any(messages):
            raise LLMBenchFailure("\n".join(m for m in messages if m))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, LLMBenchFailure):
            return _printable(str(excinfo.value))
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        where = f" [{self.param}]" if self.param else ""  # a failure's heading tells repetitions and levels apart
        return self.path, None, escape_for_terminal(f"llmbench {self.case.category}: {self.case.name}{where}")


def _printable(message: str) -> str:
    """A failure message safe for the terminal, its own line breaks kept."""
    return "\n".join(escape_for_terminal(line) for line in message.split("\n"))


def is_suite_path(file_path: Path, suites: tuple[Path, ...]) -> bool:
    """A named suite file, a ``*.json`` inside a named suite folder, or any ``*.llmbench.json``."""
    if file_path.name.endswith(SUITE_SUFFIX):
        return True
    if not suites:
        return False
    resolved = file_path.resolve()
    return resolved in suites or (file_path.suffix == ".json" and any(s in resolved.parents for s in suites))


def matches_category(category: str, patterns: tuple[str, ...]) -> bool:
    """Case-insensitive: a pattern with ``*`` is a wildcard over the whole name, otherwise a substring."""
    name = category.lower()
    for pattern in (p.lower() for p in patterns):
        if ("*" in pattern and fnmatch.fnmatchcase(name, pattern)) or ("*" not in pattern and pattern in name):
            return True
    return False


def suites_requested(config: pytest.Config, settings: Settings) -> bool:
    """Whether the session will collect suites: given as options, or as ``*.llmbench.json`` paths or folders."""
    if settings.suite:
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        if path.name.endswith(SUITE_SUFFIX) or (path.is_dir() and next(path.rglob(f"*{SUITE_SUFFIX}"), None)):
            return True
    return False


def add_suites_to_args(config: pytest.Config, suites: tuple[Path, ...]) -> None:
    """Suites named on the command line alone run alone; beside test paths, or from the ini file, they join."""
    existing = [str(p) for p in suites if p.exists()]  # missing ones become error items at collection
    named_here = bool(config.getoption("llmbench_suite"))
    if named_here and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = existing
    else:
        config.args.extend(existing)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
    if is_suite_path(file_path, parent.config.stash[SUITES_KEY]):
        return SuiteFile.for_path(parent, file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The session's items once collected: named suites that do not exist as error items, node ids checked to
    be distinct, every item's file stem for the run, ``--llmbench-category`` applied, and a load run's levels and
    repetitions in order."""
    items.extend(missing_suite_items(session, config.stash[SUITES_KEY]))
    check_distinct_nodeids(items)
    assign_file_stems(items)
    deselect_categories(config, items, config.stash[SETTINGS_KEY].category)
    order_by_load(items)


def order_by_load(items: list[pytest.Item]) -> None:
    """Sweep levels one after another, and each repetition of the selection after the one before (a stable
    sort, so that every xdist worker gets the same order); other tests keep their places in the first level."""
    items.sort(key=lambda item: (item.phase, item.repeat) if isinstance(item, LLMBenchItem) else (0, 0))


def missing_suite_items(session: pytest.Session, suites: tuple[Path, ...]) -> list[pytest.Item]:
    """A named suite that does not exist still reports itself, as one error item."""
    return [item for path in suites if not path.exists()
            for item in SuiteFile.for_path(session, path).collect()]


def check_distinct_nodeids(items: list[pytest.Item]) -> None:
    """Stop at collection when two llmbench items share a node id: their results and files would overwrite
    each other's. Raises pytest.UsageError naming both tests."""
    seen: dict[str, LLMBenchItem] = {}
    for item in items:
        if not isinstance(item, LLMBenchItem):
            continue
        other = seen.setdefault(item.nodeid, item)
        if other is not item:
            raise pytest.UsageError(f"llmbench: two tests share the node id {item.nodeid}: {other.case.id!r} in "
                                    f"{other.path} and {item.case.id!r} in {item.path}; give them distinct ids")


def assign_file_stems(items: list[pytest.Item]) -> None:
    """File names for the whole run, the same in every xdist worker; names clash only inside one model's folder."""
    ours = [item for item in items if isinstance(item, LLMBenchItem)]
    for subdir in {item.output_subdir for item in ours}:
        group = [item for item in ours if item.output_subdir == subdir]
        stems = assign_stems((item.nodeid, f"{item.case.name} [{item.load_param}]" if item.load_param
                              else item.case.name) for item in group)
        for item in group:
            item.file_stem = stems[item.nodeid]


def deselect_categories(config: pytest.Config, items: list[pytest.Item], patterns: tuple[str, ...]) -> None:
    if not patterns:
        return
    deselected = [i for i in items if isinstance(i, LLMBenchItem) and not matches_category(i.case.category, patterns)]
    dropped = set(map(id, deselected))
    if deselected and not any(isinstance(i, LLMBenchItem) and id(i) not in dropped for i in items):
        # a misspelt category: say which exist instead of pytest's bare "no tests collected (5 deselected)"
        known = sorted({i.case.category for i in deselected})
        shown = ", ".join(known[:20]) + (f" … ({len(known)} in all)" if len(known) > 20 else "")
        pytest.exit(f"llmbench: --llmbench-category {' '.join(patterns)} matches no test; the categories are: "
                    f"{shown}", returncode=pytest.ExitCode.USAGE_ERROR)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [i for i in items if id(i) not in dropped]
