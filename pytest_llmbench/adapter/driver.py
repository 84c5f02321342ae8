"""The dispatcher inside pytest: which items this process will run, their requests sent ahead, and what a
stopping run keeps.

Without xdist the items to run are ``session.items`` from the first one on; in an xdist worker they are the
indices the controller has handed it (``WorkerInteractor.torun``), looked at again before each item so that
a later chunk (the next sweep level) is sent as soon as it arrives. An item that a ``skip``/``skipif`` or
``xfail(run=False)`` mark keeps from running is never sent; one that pytest skips or stops in any other way
has its request dropped (if not yet sent) when its protocol ends. ``-x``/``--maxfail`` stop the sending at
the first report that sets them; Ctrl-C and SIGTERM at the end of the session. What was answered but no
item reported is finished (checks, SLOs) and recorded: a stopped run keeps every answer it got.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..result import dumps_strict
from ..runner import Answered, Runner, failure_message
from ..session.handoff import HOST, Delivery
from ..session.load.dispatcher import DONE, EXPIRED, WARMUP_PHASE, Dispatcher, Ticket
from ..session.load.plan import LoadPlan, ceiling, process_level, share
from .internals import marks_keep_from_running, worker_indices_ahead, worker_input, worker_output
from .items import LLMBenchItem

WORKEROUTPUT_KEY = "llmbench_load"
CONVERSATION = "conversation"  # a ticket that sends a conversation's turns, one after another
DURATION_SKIP = "llmbench: --llmbench-duration passed before this test's request was sent"
_SESSION = pytest.StashKey[pytest.Session]()
DRIVER_KEY = pytest.StashKey["LoadDriver"]()  # only in a load run


def worker_position(config: pytest.Config) -> tuple[int, int, str | None]:
    """(index, count, worker id) of this process among the session's processes."""
    workerinput = worker_input(config)
    if not workerinput:
        return 0, 1, None
    workerid = str(workerinput.get("workerid", "gw0"))
    index = int(workerid[2:]) if workerid[2:].isdigit() else 0
    return index, int(workerinput.get("workercount", 1)), workerid


class LoadDriver:
    """One per process (registered as a plugin) when the options ask for load."""

    def __init__(self, config: pytest.Config, plan: LoadPlan, runner: Callable[[], Runner]) -> None:
        self.config = config
        self.plan = plan
        self._make_runner = runner  # built on first use, so that --collect-only and --setup-plan stay offline
        self.index, self.count, self.worker = worker_position(config)
        self.levels = [process_level(level, self.index, self.count) for level in plan.levels]
        self.in_flight = max(ceiling(level) for level in self.levels)
        self._dispatcher: Dispatcher | None = None
        self._fed: set[int] = set()  # indices of session.items already handed to the dispatcher
        self._fed_all = False
        self._warmed = False
        self._stopped = False
        self._leftovers: list[tuple[Delivery, bool]] = []  # answered, but their items never ran
        self._taken: dict[str, Ticket] = {}  # answers an item took whose report is not recorded yet
        self.counts = {"cancelled": 0, "warmup_requests": 0, "warmup_errors": 0}

    @property
    def runner(self) -> Runner:
        return self._make_runner()

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            plan = self.plan
            seed = None if plan.seed is None else plan.seed * 1000 + self.index  # each worker its own arrivals
            self._dispatcher = Dispatcher(self._send, burstiness=plan.burstiness,
                                          ramp_s=plan.ramp_s, duration_s=plan.duration_s, seed=seed,
                                          threads=self.in_flight)
        return self._dispatcher

    # -- feeding ---------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if not self._stopped:
            self.feed(item.session, item)

    def feed(self, session: pytest.Session, current: pytest.Item) -> None:
        upcoming = [item for item in self._upcoming(session, current)  # a resumed item only shows its record
                    if isinstance(item, LLMBenchItem) and item.resumed is None and not marks_keep_from_running(item)]
        if not upcoming:
            return
        tickets = [self._ticket(item.nodeid, item.case, item.model, item.phase) for item in upcoming]
        if self.plan.warmup and not self._warmed:  # before the first measured request
            self._warmed = True
            tickets = self._warmup(upcoming) + tickets
        self.dispatcher.add(tickets)

    def _upcoming(self, session: pytest.Session, current: pytest.Item) -> list[pytest.Item]:
        ahead = worker_indices_ahead(self.config)
        if ahead is None:  # no xdist: the rest of the session, in order, once
            if self._fed_all:
                return []
            self._fed_all = True
            return session.items[session.items.index(current):]
        new: list[int] = []
        for index in reversed(ahead):  # new chunks arrive at the end of the queue
            if not isinstance(index, int):
                continue
            if index in self._fed:
                break
            new.append(index)
        self._fed.update(new)
        return [session.items[i] for i in reversed(new)]

    def _send(self, api_type: str, body: dict[str, Any]) -> Any:
        """What a ticket's thread does: one request, as steps that need no thread while its answer streams; or a
        whole conversation (its slot and thread held throughout, as a chat user holds a session)."""
        if api_type == CONVERSATION:
            return self.runner.talk(body["case"], body["model"])
        return self.runner.client.send_steps(api_type, body)

    def _ticket(self, key: str, case: Any, model: str | None, phase: int) -> Ticket:
        api_type = CONVERSATION if case.turns is not None else case.api_type
        ticket = Ticket(key=key, api_type=api_type, body={}, phase=phase, level=self.levels[max(phase, 0)],
                        send_at=case.send_at_s if phase != WARMUP_PHASE else None)
        if case.turns is not None:  # its turns are prepared as they go: each needs the answer before it
            ticket.body = {"case": case, "model": model}
            return ticket
        try:
            ticket.body = self.runner.prepare(case, model)
        except Exception as exc:  # noqa: BLE001 - a build_request hook's error fails its own item, as unloaded
            ticket.error, ticket.state = exc, DONE
            ticket.event.set()
        return ticket

    def _warmup(self, upcoming: list[Any]) -> list[Ticket]:
        count = share(self.plan.warmup, self.index, self.count)
        cycle = itertools.cycle(upcoming)
        tickets = []
        for number in range(count):
            item = next(cycle)
            ticket = self._ticket(f"warmup-{number}", item.case, item.model, WARMUP_PHASE)
            ticket.level = self.levels[0]
            tickets.append(ticket)
        return tickets

    # -- the item's side -------------------------------------------------------------------------

    @property
    def sending(self) -> int | None:
        """Requests in flight now in this process."""
        return None if self._dispatcher is None else self._dispatcher.in_flight

    def sent_ahead(self, item: LLMBenchItem) -> list[Answered] | None:
        """The item's answers (one, or a conversation's turns), if its request was sent ahead, else None (it sends its
        own); its checks and SLOs are the item's to run. Skips an item the duration left unsent."""
        if self._dispatcher is None or not self._dispatcher.knows(item.nodeid):
            return None
        # held in _taken until its report is recorded: a Ctrl-C before that keeps the answer
        ticket = self.dispatcher.take(item.nodeid, self._taken)
        if ticket.state != DONE:
            self._taken.pop(item.nodeid, None)
            if ticket.state == EXPIRED:
                pytest.skip(DURATION_SKIP)
            raise KeyboardInterrupt("llmbench: the run was stopped")  # the run is stopping under this item
        return self._answers(ticket)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Iterator[None]:
        """Let go of an answer only once every other plugin (the controller's recorder) has taken its report: a
        Ctrl-C while it is being recorded raises out of the ``yield`` and keeps the answer for stop()."""
        yield
        if report.when == "call":
            self._taken.pop(report.nodeid, None)

    @staticmethod
    def _answers(ticket: Ticket) -> list[Answered]:
        if ticket.error is not None:
            raise ticket.error
        answered: list[Answered] = ticket.answer if ticket.api_type == CONVERSATION else [(ticket.answer,
                                                                                           ticket.window)]
        answered[0][0].schedule_lag = ticket.schedule_lag  # a conversation's first turn left on the schedule
        return answered

    # -- stopping --------------------------------------------------------------------------------

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self._dispatcher is not None:
            self._dispatcher.drop(nodeid)  # not taken by its item (skipped, errored in set-up): not wanted
        session = self.config.stash.get(_SESSION, None)
        if session is not None and (session.shouldfail or session.shouldstop):
            self.stop()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.config.stash[_SESSION] = session

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """What collection built lives to the session's end: frozen, so that no full garbage collection walks it
        while requests are in flight (a 25-45 ms pause that every answer arriving meanwhile waits out, in its
        TTFT). Unfrozen when the session finishes."""
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        """Send nothing more; in-flight requests are cut; answered ones no item took become leftovers."""
        if self._stopped or self._dispatcher is None:
            self._stopped = True
            return
        self._stopped = True
        leftovers = self.dispatcher.stop()
        self.counts["cancelled"] = self.dispatcher.cancelled
        warmup = [t for t in self.dispatcher.warmup if t.state == DONE]
        self.counts["warmup_requests"] = len(warmup)
        self.counts["warmup_errors"] = sum(t.error is not None or not t.answer.success for t in warmup)
        items = {item.nodeid: item for item in self.config.stash[_SESSION].items if isinstance(item, LLMBenchItem)}
        for ticket in {t.key: t for t in [*leftovers, *self._taken.values()]}.values():
            item = items.get(ticket.key)
            if item is None:
                continue
            try:
                answered = self.runner.finish_answers(item.case, self._answers(ticket))
            except Exception:  # noqa: BLE001 - a hook failing now loses only this leftover
                continue
            passed = all(failure_message(result, item.case) is None for result, _ in answered)
            self._leftovers += [(item.delivery(result, window), passed) for result, window in answered]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.stop()
        gc.unfreeze()
        workeroutput = worker_output(self.config)
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_KEY] = dumps_strict(self.report())

    def report(self) -> dict[str, Any]:
        """What the controller needs from this process beyond its items' reports (plain JSON types)."""
        starts = self._dispatcher.phase_starts if self._dispatcher is not None else {}
        return {"host": HOST, "worker": self.worker, **self.counts,
                "phase_starts": {str(k): v for k, v in starts.items()},
                "leftovers": [[delivery.to_json(), passed] for delivery, passed in self._leftovers]}
