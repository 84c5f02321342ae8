"""The capacity search (``--llmbench-search``): each probed level of load runs on a ``Dispatcher`` of its own (the load
path every load run takes), sending the suite's requests in turn, until its attainment is decided or its cap is
reached; metrics/capacity.py judges each level and chooses the next.

A level is sequential: its attainment's Wilson interval is looked at after 8, 16, 32, ... judged requests (fewer at
first when the level has fewer in flight), at the fewest that could pass it and at its cap, at a level that keeps
the looks together within the confidence, and the level stops at the first look whose interval clears the target
(pass) or falls wholly below it (fail). Its first answers are a warm-up, not counted: by default one wave (as many
as the level's concurrency, or a second's worth of its rate), since the first wave of a concurrency level arrives as
a ramp, not as the level's steady load.

Over-saturation ends a level as a fail, never as a hang: every wait has a deadline. A request still in flight past a
whole-request (latency) limit has missed it and is counted so at once; a rate level whose requests in flight reach
the ceiling (the queue would grow without bound) fails at once; a level whose cap comes while more of its requests
are in flight than were answered, or with none answered, fails as over-saturated. Once a level ends, its requests in
flight get at most ``DRAIN_S`` to finish (they are not counted), then are cut, so that the next level starts on a
quiet server.
"""

from __future__ import annotations

import contextlib
import math
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...batch import Capacity, CapacityProbe
from ...exceptions import ConfigurationError
from ...metrics.capacity import (
    FAIL,
    FIRST_LOOK,
    MET,
    MISSED,
    PASS,
    SEARCH_KINDS,
    UNDECIDED,
    Bracket,
    Objective,
    SearchSpec,
    classify,
    judge,
    next_level,
    objectives_of,
    schedule,
    target_of,
)
from ...metrics.stats import percentile
from .dispatcher import DONE, QUEUED, SENT, Dispatcher, Ticket
from .plan import DEFAULT_RATE_CEILING, Level, ceiling

if TYPE_CHECKING:
    from ...metrics.slo import RunSlo
    from ...options import Settings

DRAIN_S = 10.0  # most seconds a finished level waits for its requests in flight before cutting them
POLL_S = 0.05  # how often a level looks at requests in flight past a limit while no answer comes


@dataclass(frozen=True)
class LevelCaps:
    requests: int  # most requests counted per level
    seconds: float  # most seconds per level
    warmup: int | None = None  # answers per level not counted; None: one wave


@dataclass(frozen=True)
class SearchSetup:
    """--llmbench-search and its options, checked."""

    spec: SearchSpec
    objectives: list[Objective]
    caps: LevelCaps
    minimum: float | None
    rate_ceiling: int = DEFAULT_RATE_CEILING  # most requests in flight at a rate level (--llmbench-concurrency)

    @property
    def in_flight(self) -> int:
        """The most requests the search keeps in flight: what the client's connection pool must hold."""
        return int(self.spec.max_level) if self.spec.kind == "concurrency" else self.rate_ceiling


def search_setup(settings: Settings, slos: list[RunSlo]) -> SearchSetup | None:
    """None without --llmbench-search. Raises ConfigurationError naming the option."""
    if settings.search is None:
        if settings.capacity_min is not None:
            raise ConfigurationError("--llmbench-capacity-min gates the capacity that --llmbench-search finds: add "
                                     "--llmbench-search concurrency (or rate) and the run SLOs to find it within")
        return None
    kind = settings.search.strip().lower()
    if kind not in SEARCH_KINDS:
        raise ConfigurationError(f"--llmbench-search: expected {' or '.join(SEARCH_KINDS)}, got {settings.search!r}")
    for other, given, why in (("--llmbench-sweep", settings.sweep, "chooses its own levels"),
                              ("--llmbench-resume", settings.resume, "cannot be resumed")):
        if given:
            raise ConfigurationError(f"--llmbench-search {why}: drop {other}")
    if settings.search_start > settings.search_max:
        raise ConfigurationError(f"--llmbench-search-start {settings.search_start:g} is above --llmbench-search-max "
                                 f"{settings.search_max:g}")
    warmup = settings.search_warmup.strip().lower()
    if warmup != "wave" and not warmup.isdigit():
        raise ConfigurationError(f"--llmbench-search-warmup: expected a number of requests or 'wave', got "
                                 f"{settings.search_warmup!r}")
    try:
        objectives = objectives_of(slos)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    spec = SearchSpec(kind, settings.search_start, settings.search_tolerance, settings.search_max,
                      settings.search_probes)
    caps = LevelCaps(settings.search_requests, settings.search_seconds, None if warmup == "wave" else int(warmup))
    return SearchSetup(spec, objectives, caps, settings.capacity_min, settings.concurrency or DEFAULT_RATE_CEILING)


@dataclass
class _Tally:
    """One level's answers so far."""

    warmup: int
    ended: int = 0
    met: int = 0
    missed: int = 0
    unvouched: int = 0
    stuck: int = 0  # in flight past a whole-request limit: missed, though not yet answered
    values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return self.met + self.missed + self.stuck

    def add(self, ticket: Ticket, objectives: Sequence[Objective]) -> None:
        self.ended += 1
        if self.ended <= self.warmup:
            return
        result = ticket.answer if ticket.error is None and ticket.state == DONE else None
        kind = MISSED if result is None else classify(result, objectives)
        self.met += kind == MET
        self.missed += kind == MISSED
        self.unvouched += kind not in (MET, MISSED)
        if result is None:
            return
        for objective in objectives:
            value = getattr(result, objective.field)
            if value is not None and not (objective.arrival_timed and result.timing_degraded):
                self.values.setdefault(objective.name, []).append(value)


class CapacitySearch:
    """Probes levels until the bracket is within the tolerance; ``run()`` returns the batch's ``capacity``."""

    def __init__(self, send: Callable[[str, dict[str, Any]], Any], bodies: Sequence[tuple[str, dict[str, Any]]],
                 spec: SearchSpec, objectives: Sequence[Objective], caps: LevelCaps, *, confidence: float = 0.95,
                 undecided: str = "warn", rate_ceiling: int = DEFAULT_RATE_CEILING, burstiness: float = 1.0,
                 seed: int | None = None, on_probe: Callable[[CapacityProbe], None] | None = None) -> None:
        self.send, self.bodies, self.spec, self.objectives, self.caps = send, bodies, spec, objectives, caps
        self.target = target_of(objectives)
        self.confidence, self.undecided = confidence, undecided
        self.rate_ceiling, self.burstiness, self.seed = rate_ceiling, burstiness, seed
        self.on_probe = on_probe
        self._sent = 0  # requests built so far: the next takes bodies[_sent % len(bodies)]
        whole = [o.limit for o in objectives if o.whole_request]
        self._stuck_after = min(whole) if whole else None
        self.section = self._section(Bracket(), [], "interrupted")  # until run() ends: the probes so far

    def run(self) -> Capacity:
        bracket, probes = Bracket(), list[CapacityProbe]()
        while True:
            level, stopped = next_level(self.spec, bracket, len(probes))
            if level is None:
                break
            probe = self.probe(level, len(probes))
            probes.append(probe)
            bracket = bracket.after(level, self.passes(probe["verdict"]))
            self.section = self._section(bracket, probes, "interrupted")
            if self.on_probe is not None:
                self.on_probe(probe)
        self.section = self._section(bracket, probes, stopped)
        return self.section

    def _section(self, bracket: Bracket, probes: list[CapacityProbe], stopped: str) -> Capacity:
        return {"kind": self.spec.kind, "objectives": [o.text for o in self.objectives], "target": self.target,
                "confidence_level": self.confidence, "tolerance": self.spec.tolerance, "start": self.spec.start,
                "max_level": self.spec.max_level, "undecided": self.undecided, "capacity": bracket.passed,
                "upper": bracket.failed, "stopped": stopped, "requests": sum(p["requests"] for p in probes),
                "probes": list(probes), "minimum": None, "minimum_passed": None, "baseline": None}

    def passes(self, verdict: str) -> bool:
        """An undecided level counts as a fail unless --llmbench-slo-undecided pass: the search does not climb on
        a level it cannot vouch for."""
        return verdict == PASS or (verdict == UNDECIDED and self.undecided == "pass")

    def _level(self, value: float) -> Level:
        if self.spec.kind == "concurrency":
            return Level(concurrency=int(value), rate=math.inf)
        return Level(concurrency=self.rate_ceiling, rate=value)

    def _wave(self, value: float) -> int:
        if self.caps.warmup is not None:
            return self.caps.warmup
        return int(value) if self.spec.kind == "concurrency" else max(1, math.ceil(value))

    def probe(self, value: float, index: int) -> CapacityProbe:
        level = self._level(value)
        top = ceiling(level)
        tally = _Tally(warmup=self._wave(value))
        finished: queue.SimpleQueue[Ticket] = queue.SimpleQueue()
        dispatcher = Dispatcher(self.send, burstiness=self.burstiness, threads=top, on_finish=finished.put,
                                seed=None if self.seed is None else self.seed * 1000 + index)
        tickets: list[Ticket] = []  # every ticket of the level, for its record and its drain
        live: list[Ticket] = []  # those queued or in flight: what each pass looks at, bounded by the level's load
        budget = tally.warmup + self.caps.requests
        ahead = top + (8 if level.rate == math.inf else math.ceil(level.rate) + 8)  # the sender never runs dry
        first = min(FIRST_LOOK, top) if level.rate == math.inf else FIRST_LOOK
        points, at = schedule(first, self.caps.requests, self.target, self.confidence)
        looked = 0  # looks taken: the next is at points[looked] judged requests
        verdict, interval = UNDECIDED, judge(0, 0, self.target, at)[1]
        started = time.monotonic()
        over, reason = False, ""
        try:
            while True:
                live = [t for t in live if t.state in (QUEUED, SENT)]
                queued = sum(t.state == QUEUED for t in live)
                more = min(ahead - queued, budget - len(tickets))
                if more > 0:
                    new = [self._ticket(level, index, len(tickets) + n) for n in range(more)]
                    tickets += new
                    live += new
                    dispatcher.add(new)
                self._take(finished, tally, POLL_S)
                now = time.monotonic()
                in_flight = [t for t in live if t.state == SENT]
                tally.stuck = self._stuck(in_flight, tally, now)
                if looked < len(points) and tally.counted >= points[looked]:
                    while looked < len(points) and tally.counted >= points[looked]:
                        looked += 1
                    verdict, interval = judge(tally.met, tally.counted, self.target, at)
                    if verdict != UNDECIDED:
                        reason = "decided"
                        break
                if level.rate != math.inf and dispatcher.in_flight >= top:
                    verdict, over = FAIL, True
                    reason = f"over-saturated: {top} requests in flight, the most allowed; the queue grows"
                    break
                answered = tally.ended - tally.warmup
                if tally.ended >= budget or now - started >= self.caps.seconds:
                    verdict, interval = judge(tally.met, tally.counted, self.target, at)  # the last look
                    if verdict != UNDECIDED:
                        reason = "decided at the cap"
                        break
                    over = answered <= 0 or len(in_flight) > answered
                    cap = "requests" if tally.ended >= budget else "seconds"
                    if over:
                        verdict = FAIL
                        reason = (f"over-saturated: at the {cap} cap {len(in_flight)} requests were in flight and "
                                  f"{max(answered, 0)} answered")
                    else:
                        reason = f"undecided at the {cap} cap"
                    break
            decided_after = time.monotonic() - started  # the drain that follows is not the level's time
        except BaseException:
            dispatcher.stop()  # Ctrl-C, SIGTERM: the requests in flight are cut at once, without a drain
            raise
        cut = self._drain(dispatcher, tickets, finished)
        return self._record(value, level, tally, tickets, (verdict, interval, at), over, reason, cut, decided_after)

    def _ticket(self, level: Level, index: int, number: int) -> Ticket:
        api_type, body = self.bodies[self._sent % len(self.bodies)]
        self._sent += 1
        return Ticket(key=f"search-{index}-{number}", api_type=api_type, body=dict(body), phase=index, level=level)

    def _take(self, finished: queue.SimpleQueue[Ticket], tally: _Tally, wait: float) -> None:
        """Count every answer that has come, waiting up to ``wait`` for the first."""
        try:
            ticket: Ticket | None = finished.get(timeout=wait)
        except queue.Empty:
            return
        while ticket is not None:
            tally.add(ticket, self.objectives)
            try:
                ticket = finished.get_nowait()
            except queue.Empty:
                ticket = None

    def _stuck(self, in_flight: list[Ticket], tally: _Tally, now: float) -> int:
        """Requests in flight past the whole-request limit: missed already. While warm-up answers are still owed,
        the oldest of them would be those, and are not counted."""
        if self._stuck_after is None:
            return 0
        past = sum(t.sent > 0 and now - t.sent > self._stuck_after for t in in_flight)
        return max(0, past - max(0, tally.warmup - tally.ended))

    @staticmethod
    def _drain(dispatcher: Dispatcher, tickets: list[Ticket], finished: queue.SimpleQueue[Ticket]) -> int:
        """Send nothing more; give the requests in flight up to DRAIN_S, then cut them. Returns how many were cut."""
        for ticket in tickets:
            if ticket.state == QUEUED:
                dispatcher.drop(ticket.key)
        deadline = time.monotonic() + DRAIN_S
        while any(t.state == SENT for t in tickets) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                finished.get(timeout=POLL_S)
        dispatcher.stop()
        return dispatcher.cancelled

    def _record(self, value: float, level: Level, tally: _Tally, tickets: list[Ticket],
                judged: tuple[str, tuple[float | None, float | None], float], over: bool, reason: str, cut: int,
                seconds: float) -> CapacityProbe:
        verdict, interval, at = judged
        counted = tally.counted
        return {"level": value, "label": level.label if self.spec.kind == "rate" else f"c{int(value)}",
                "requests": sum(t.sent > 0 for t in tickets), "warmup": min(tally.warmup, tally.ended),
                "counted": counted, "met": tally.met, "stuck": tally.stuck, "unvouched": tally.unvouched,
                "attainment": tally.met / counted if counted else None,
                "attainment_ci": [interval[0], interval[1]], "interval_level": at, "verdict": verdict,
                "passed": self.passes(verdict), "over_saturated": over, "reason": reason, "cut": cut,
                "duration_s": seconds,
                "figures": {o.name: _ms(tally.values.get(o.name, []), o.share) for o in self.objectives}}


def _ms(values: list[float], share: float) -> float | None:
    """An objective's percentile at the level, in ms, as every percentile the plugin reports (numpy's linear)."""
    return percentile(sorted(values), share * 100.0) * 1000.0 if values else None
