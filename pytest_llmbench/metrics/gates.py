"""Run-wide pass/fail beyond the items: SLOs over the pooled statistics and regressions against a baseline.

Parsed when the session starts, so a typo in a gate stops the run before any request instead of after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..options import Settings
from .baseline import (
    Delta,
    Threshold,
    check_regressions,
    compare,
    format_table,
    load_baseline,
    metrics_to_compare,
    parse_threshold,
)
from .slo import RunSlo, SloMiss, check_run_slos, parse_run_slos


@dataclass
class GateResult:
    slo_misses: list[SloMiss] = field(default_factory=list)
    deltas: list[Delta] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    baseline_path: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.slo_misses or self.regressions)

    def failures(self) -> list[str]:
        return [m.message for m in self.slo_misses] + self.regressions

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": not self.failed,
            "slo_misses": [m.to_dict() for m in self.slo_misses],
            "comparison": None if self.baseline_path is None else {
                "baseline": self.baseline_path,
                "deltas": [vars(d) for d in self.deltas],
                "regressions": self.regressions,
            },
        }

    def table(self) -> list[str]:
        return format_table(self.deltas) if self.deltas else []


@dataclass
class Gates:
    slos: list[RunSlo]
    thresholds: list[Threshold]
    baseline: dict[str, Any] | None
    baseline_path: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Gates:
        """Raises ValueError naming the bad SLO, threshold or baseline file."""
        baseline = load_baseline(settings.compare) if settings.compare else None
        return cls(slos=parse_run_slos(settings.slo),
                   thresholds=[parse_threshold(spec) for spec in settings.compare_fail],
                   baseline=baseline, baseline_path=settings.compare)

    @property
    def active(self) -> bool:
        return bool(self.slos or self.thresholds or self.baseline)

    def check(self, aggregate: dict[str, Any]) -> GateResult:
        result = GateResult(slo_misses=check_run_slos(self.slos, aggregate))
        if self.baseline is not None:
            result.baseline_path = str(self.baseline_path)
            result.deltas = compare(self.baseline["aggregate"], aggregate, metrics_to_compare(self.thresholds))
            result.regressions = check_regressions(result.deltas, self.thresholds)
        return result
