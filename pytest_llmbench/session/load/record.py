"""The controller's record of the load: timeline, schedule lag, hosts, warm-up, skips, and one set of
statistics per sweep level; it becomes the batch file's ``load`` and ``timeline`` sections.

Fed by the ``Recorder`` with each result's ``Delivery`` (see session/handoff.py) and, at the end, with each
process's own report (warm-up, cancelled requests, answers no item reported).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ...batch import Row, Sweep
from ...metrics.intervals import DEFAULT_LEVEL
from ...metrics.slo import RunSlo
from ...metrics.stats import StatsAccumulator, describe_sorted
from ...metrics.sweep import knee, level_row
from ...metrics.timeline import Timeline
from ...result import METRICS, TestResult
from ..handoff import Delivery
from .dispatcher import WARMUP_PHASE
from .plan import LoadPlan


@dataclass
class LoadRecord:
    plan: LoadPlan
    slos: list[RunSlo] = field(default_factory=list)
    bucket_s: float = 1.0
    undecided: str = "warn"  # a level's SLO its interval straddles: --llmbench-slo-undecided
    level: float = DEFAULT_LEVEL  # of the levels' confidence intervals

    def __post_init__(self) -> None:
        self.timeline = Timeline()
        self._levels: dict[int, tuple[StatsAccumulator, Timeline]] = {}
        self._lags: list[float] = []
        self.hosts: Counter[str] = Counter()
        self.duration_skipped = 0
        self.processes: list[dict[str, Any]] = []
        self._first_sent, self._last_sent = math.inf, -math.inf

    def rates(self) -> tuple[float | None, float | None]:
        """(offered, achieved so far) requests/s, for the progress line; offered is None without a rate."""
        rate = self.plan.levels[0].rate
        count, span = len(self.timeline), self._last_sent - self._first_sent
        return (None if rate == math.inf else rate), ((count - 1) / span if count > 1 and span > 0 else None)

    def add(self, delivery: Delivery, result: TestResult, row: Row) -> None:
        """One finished request; adds its load fields to its batch row."""
        phase = delivery.phase
        row["host"], row["worker"] = delivery.host, delivery.worker
        if self.plan.sweep_kind and 0 <= phase < len(self.plan.levels):
            row["level"] = self.plan.levels[phase].label
        if delivery.host:
            self.hosts[delivery.host] += 1
        if result.schedule_lag is not None:
            self._lags.append(result.schedule_lag)
        series = [self.timeline]
        if self.plan.sweep_kind:  # each level's own statistics, for its row of the sweep table
            stats, timeline = self._level(phase)
            stats.add({**row, **{m.field: getattr(result, m.field) for m in METRICS if m.per_chunk}})
            series.append(timeline)
        wall = delivery.wall
        if wall:
            self._first_sent = min(self._first_sent, wall[0])
            self._last_sent = max(self._last_sent, wall[0])
            for timeline in series:
                timeline.add(wall[0], wall[1], result.completion_tokens, not result.success)

    def add_resumed(self, phase: int, row: dict[str, Any], chunks: dict[str, Any],
                    wall: list[float] | None) -> None:
        """A result recorded by an earlier session: in its level's statistics and timeline (a level is always one
        session's: resume reruns a cut level whole); not in this session's timeline."""
        if self.plan.sweep_kind:
            stats, timeline = self._level(phase)
            stats.add({**row, **chunks})
            if wall:
                timeline.add(wall[0], wall[1], row.get("completion_tokens"), not row.get("success"))

    def _level(self, phase: int) -> tuple[StatsAccumulator, Timeline]:
        return self._levels.setdefault(phase, (StatsAccumulator(slowest_kept=0, level=self.level), Timeline()))

    def add_process(self, report: dict[str, Any]) -> None:
        self.processes.append({k: v for k, v in report.items() if k != "leftovers"})

    def section(self) -> dict[str, Any]:
        plan = self.plan
        base = plan.levels[0]
        out: dict[str, Any] = {
            "concurrency": base.concurrency or None,
            "request_rate": None if base.rate == math.inf else base.rate,
            "burstiness": plan.burstiness, "ramp_s": plan.ramp_s or None, "duration_s": plan.duration_s or None,
            "repeat": plan.repeat,
            "achieved_rate": self.timeline.send_rate(),
            "schedule_lag_ms": {k: (v * 1000 if isinstance(v, float) else v)
                                for k, v in describe_sorted(sorted(self._lags)).items()},
            "warmup": {"requests": sum(p.get("warmup_requests", 0) for p in self.processes),
                       "errors": sum(p.get("warmup_errors", 0) for p in self.processes), **self._warmup_span()},
            "duration_skipped": self.duration_skipped,
            "cancelled_in_flight": sum(p.get("cancelled", 0) for p in self.processes),
            "hosts": dict(self.hosts),
            "processes": len(self.processes) or None,
        }
        return out

    def _warmup_span(self) -> dict[str, float | None]:
        """When the warm-up ran, in s from the first measured request (negative: it comes first): from the first
        process's first warm-up request to the last one's first measured request, which waits for its warm-up's
        answers; for the report's timelines."""
        warmed = [{int(k): v for k, v in (p.get("phase_starts") or {}).items()} for p in self.processes]
        warmed = [starts for starts in warmed if WARMUP_PHASE in starts]
        if not warmed or not math.isfinite(self._first_sent):
            return {"start_s": None, "end_s": None}
        ends = [min(t for phase, t in starts.items() if phase != WARMUP_PHASE) for starts in warmed
                if len(starts) > 1]
        return {"start_s": round(min(s[WARMUP_PHASE] for s in warmed) - self._first_sent, 3),
                "end_s": round(max(ends) - self._first_sent, 3) if ends else None}

    def sweep_section(self) -> Sweep | None:
        """The batch's ``sweep``: one row per level, in the order run, and the knee's level label."""
        if not self.plan.sweep_kind:
            return None
        levels = self.levels()
        return {"kind": self.plan.sweep_kind, "levels": levels, "knee": knee(levels)}

    def levels(self) -> list[dict[str, Any]]:
        rows = []
        for phase, level in enumerate(self.plan.levels):
            stats, timeline = self._levels.get(phase, (StatsAccumulator(slowest_kept=0, level=self.level), Timeline()))
            rows.append(level_row(level.label, level.concurrency, level.rate, stats.summary(timeline.span()),
                                  timeline.send_rate(), self.slos, self.undecided))
        return rows

    def timeline_section(self) -> dict[str, Any]:
        return self.timeline.buckets(self.bucket_s)
