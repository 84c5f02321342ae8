"""The capacity search's arithmetic: which requests meet the objectives, when a level is decided, which level to try
next, and the answer. No I/O and no pytest: session/load/search.py runs the levels.

A run SLO on a percentile, ``<metric>_p<Q> <= L``, is a per-request objective "value <= L" with a target share
Q/100: when at least Q % of the requests meet L, the Q-th percentile is at most L. A request *attains* when it
succeeded and meets every objective; with several SLOs the target is the highest of their shares (GuideLLM's goodput
profile likewise holds one target for all objectives). A level is judged by the Wilson interval of its attainment
(metrics/intervals.py): ``pass`` once the interval lies at or above the target, ``fail`` once it lies wholly below,
``undecided`` while it straddles it. It is looked at after 8, 16, 32, ... judged requests, at its cap and at the
fewest judged requests that could pass it, each look at a level widened by Bonferroni (``look_level``): a level
stops at the first look that decides it, and peeking does not inflate the chance of a wrong verdict.

The levels: from ``start`` the level doubles until one fails, then the bracket between the highest passing and the
lowest failing level is halved until its width is within ``tolerance`` of the passing end (GuideLLM's goodput
search, 10 % by default) or, for concurrency, the two are neighbours. The answer is the bracket: the capacity is its
passing end, the true capacity lies below its failing end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from ..batch import CapacityBaseline
from .intervals import Interval, wilson
from .samples import split_key
from .slo import RunSlo
from .stats import BY_KEY, PERCENTILE_STATS

SEARCH_KINDS = ("concurrency", "rate")
PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
MIN_RATE_SHARE = 1 / 16  # a rate search that passes nothing halves down to start / 16, then gives up


@dataclass(frozen=True)
class Objective:
    """One per-request objective from a run SLO: the result's ``field`` at most ``limit`` (in seconds when the
    metric is a time)."""

    name: str  # the SLO as written: "latency_p90"
    field: str  # the TestResult field: "execution_time"
    limit: float  # in the field's unit: seconds for times
    share: float  # the share of requests the SLO's percentile asks to meet it: 0.9 for a p90
    text: str  # "latency_p90 <= 250 ms"
    arrival_timed: bool  # rests on when tokens arrived: a timing_degraded result cannot vouch for it
    whole_request: bool  # the request's whole time (latency): one still in flight past the limit has missed it
    streamed: bool  # measured only on streamed answers (TTFT, TPOT)


def objectives_of(slos: Iterable[RunSlo]) -> list[Objective]:
    """The per-request objectives of the run SLOs. Raises ValueError for an SLO that is no upper limit on a
    percentile of a per-request time (a mean, a throughput, a server metric): it cannot be judged request by
    request."""
    found = []
    for slo in slos:
        split = split_key(slo.key)
        metric = BY_KEY.get(split[1]) if split is not None else None
        if split is None or metric is None or metric.per_chunk or not metric.seconds or slo.op != "<=":
            raise ValueError(f"--llmbench-search: run SLO {slo.text} cannot be judged request by request; the search "
                             "takes limits on a percentile of a per-request time, e.g. latency_p90=2s or "
                             "ttft_p99=300ms")
        found.append(Objective(slo.name, metric.field, slo.limit / 1000.0, PERCENTILE_STATS[split[0]] / 100.0,
                               slo.text, metric.arrival_timed, metric.field == "execution_time", metric.streamed))
    if not found:
        raise ValueError("--llmbench-search finds the highest load within the run SLOs: add at least one "
                         "--llmbench-slo, e.g. --llmbench-slo latency_p90=2s")
    return found


def target_of(objectives: Sequence[Objective]) -> float:
    return max(objective.share for objective in objectives)


MET, MISSED, UNVOUCHED = "met", "missed", "unvouched"


def classify(result: Any, objectives: Sequence[Objective]) -> str:
    """``met``, ``missed`` or ``unvouched``: a failed request misses; a value the client cannot vouch for (its
    tokens' arrival times were read together, ``timing_degraded``) leaves the request out of the attainment."""
    if not result.success:
        return MISSED
    unvouched = False
    for objective in objectives:
        value = getattr(result, objective.field)
        if objective.arrival_timed and result.timing_degraded:
            unvouched = True
        elif value is None or value > objective.limit:
            return MISSED
    return UNVOUCHED if unvouched else MET


FIRST_LOOK = 8  # judged requests at a level's first look (fewer when the level has fewer in flight)


def looks(first: int, cap: int) -> list[int]:
    """The counts of judged requests at which a level is looked at: ``first``, doubling, and the cap."""
    points, count = [], max(1, first)
    while count < cap:
        points.append(count)
        count *= 2
    return [*points, cap]


def look_level(confidence: float, count: int) -> float:
    """The interval level of each of ``count`` looks (and one more, at a time cap): Bonferroni, so that the chance
    of a wrong verdict on a level stays within 1 - ``confidence`` however many looks it takes. Looking after every
    answer at the plain level would not: a level 3 points above a 90 % target failed 13 % of the time in simulation,
    and with this schedule 0.6 %."""
    return 1.0 - (1.0 - confidence) / (count + 1)


def schedule(first: int, cap: int, target: float, confidence: float) -> tuple[list[int], float]:
    """A level's looks and their interval level: ``first``, doubling, the cap, and the fewest judged requests at
    which a level whose every request attains can pass (n / (n + z^2) >= target), so that a clearly passing level
    stops there rather than at the next doubling (a p95 target: 150, not 256)."""
    points = looks(first, cap)
    level = look_level(confidence, len(points) + 1)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    earliest = math.ceil(z * z * target / (1.0 - target) - 1e-9)
    return (sorted({*points, earliest}) if earliest < cap else points), level


def judge(met: int, counted: int, target: float, level: float) -> tuple[str, Interval]:
    """The level's verdict on its attainment so far, and the attainment's Wilson interval at ``level``."""
    low, high = wilson(met, counted, level)
    if low is not None and low >= target:
        return PASS, (low, high)
    if high is not None and high < target:
        return FAIL, (low, high)
    return UNDECIDED, (low, high)


@dataclass(frozen=True)
class SearchSpec:
    """Where the search starts, how fine it ends and its caps."""

    kind: str  # "concurrency" or "rate"
    start: float
    tolerance: float  # 0.1: bisect until the bracket is within 10 % of its passing end
    max_level: float  # the highest level tried
    max_probes: int

    def round(self, level: float) -> float:
        """Concurrency levels are whole; rates keep three significant digits."""
        if self.kind == "concurrency":
            return float(max(1, math.floor(level)))
        return float(f"{level:.3g}")


@dataclass(frozen=True)
class Bracket:
    """The highest passing and the lowest failing level so far (None: none yet)."""

    passed: float | None = None
    failed: float | None = None

    def after(self, level: float, passed: bool) -> Bracket:
        if passed:
            return Bracket(level if self.passed is None else max(self.passed, level), self.failed)
        return Bracket(self.passed, level if self.failed is None else min(self.failed, level))


def next_level(spec: SearchSpec, bracket: Bracket, probes: int) -> tuple[float | None, str]:
    """The next level to probe, or None with why the search stops: ``converged``, ``max_level`` (every level up to
    the cap passed), ``none_passed`` or ``max_probes``."""
    if probes == 0:
        return spec.round(min(spec.start, spec.max_level)), ""
    low, high = bracket.passed, bracket.failed
    if high is None:
        if low is not None and low >= spec.max_level:
            return None, "max_level"
        level = spec.round(min(2 * (low or spec.start), spec.max_level))
    elif low is None:
        level = spec.round(high / 2)
        floor = 1.0 if spec.kind == "concurrency" else spec.start * MIN_RATE_SHARE
        if level >= high or level < floor:
            return None, "none_passed"
    else:
        if high - low <= spec.tolerance * low or (spec.kind == "concurrency" and high - low <= 1):
            return None, "converged"
        level = spec.round((low + high) / 2)
        if not low < level < high:
            return None, "converged"
    if probes >= spec.max_probes:
        return None, "max_probes"
    return level, ""


STOPPED_TEXT = {
    "converged": "converged within the tolerance",
    "max_level": "every level up to --llmbench-search-max passed, so the capacity is at least the cap",
    "none_passed": "no level passed",
    "max_probes": "stopped at --llmbench-search-probes before converging",
}


def answer_text(section: Mapping[str, Any]) -> str:
    """"capacity: concurrency 24, below 26 (the lowest level that failed); 8 probes, 212 requests; converged ..."."""
    kind, capacity, upper = section["kind"], section["capacity"], section["upper"]
    probes = len(section["probes"])
    shown = "none" if capacity is None else f"{capacity:g}"
    if upper is not None and capacity is not None:
        shown += f", below {upper:g} (the lowest level that failed)"
    return (f"capacity: {kind} {shown}; {probes} probe{'' if probes == 1 else 's'}, {section['requests']} requests; "
            f"{STOPPED_TEXT.get(section['stopped'], section['stopped'])}")


def minimum_check(section: Mapping[str, Any], minimum: float) -> tuple[bool, str]:
    """--llmbench-capacity-min: the found capacity (the highest level that passed: the bracket's lower end) against
    the minimum; (passed, message)."""
    capacity = section["capacity"]
    passed = capacity is not None and capacity >= minimum
    found = "no level passed" if capacity is None else f"found {capacity:g}"
    verb = "at least" if passed else "below"
    return passed, f"capacity ({section['kind']}) {found}: {verb} --llmbench-capacity-min {minimum:g}"


def against_baseline(now: Mapping[str, Any], before: Any) -> CapacityBaseline | None:
    """The baseline's capacity beside this run's. Each is a bracket, [highest passing, lowest failing) level; the
    capacity changed when the two brackets do not overlap (the search's resolution), else it is unchanged."""
    if not isinstance(before, Mapping) or "capacity" not in before:
        return None
    low, high = before.get("capacity"), before.get("upper")
    if before.get("kind") != now["kind"] or list(before.get("objectives") or []) != list(now["objectives"]):
        change = (f"not comparable: the baseline searched {before.get('kind')} within "
                  f"{', '.join(map(str, before.get('objectives') or []))}")
    elif _top(now["upper"]) <= (low or 0.0):
        change = "lower"
    elif _top(high) <= (now["capacity"] or 0.0):
        change = "higher"
    else:
        change = "unchanged"
    return {"capacity": low, "upper": high, "change": change}


def _top(upper: float | None) -> float:
    return math.inf if upper is None else upper


def baseline_text(section: Mapping[str, Any]) -> str | None:
    """"against the baseline: 24 (below 26) -> 20 (below 22): lower"; None without a baseline's capacity."""
    before = section.get("baseline")
    if not before:
        return None

    def bracket(low: float | None, high: float | None) -> str:
        return ("none" if low is None else f"{low:g}") + ("" if high is None else f" (below {high:g})")

    return (f"capacity against the baseline: {bracket(before['capacity'], before['upper'])} -> "
            f"{bracket(section['capacity'], section['upper'])}: {before['change']}")
