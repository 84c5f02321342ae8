"""Run-wide pass/fail beyond the items: SLOs over the pooled statistics and regressions against a baseline.

Parsed when the session starts, so a typo in a gate stops the run before any request instead of after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import Batch, Comparison, Row, RunInfo
from ..batch import Gates as GatesSection
from .baseline import (
    MIN_CHANGE,
    Delta,
    Threshold,
    check_regressions,
    compare,
    format_table,
    load_baseline,
    metrics_to_compare,
    parse_threshold,
)
from .baseline_tests import Pairing, only, pair, shared_aggregate, shared_keys
from .drift import drift_failures
from .samples import FEW_SAMPLES, level_of
from .significance import describe
from .slo import UNDECIDED, RunSlo, SloMiss, check_run_slos, measured_text, parse_run_slos, undecided_warnings, verdict


@dataclass
class GateResult:
    slo_misses: list[SloMiss] = field(default_factory=list)
    deltas: list[Delta] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    baseline_path: str | None = None
    pairing: Pairing | None = None  # the baseline's tests beside this run's, and how the two runs differ
    failed_gates: list[tuple[str, str]] = field(default_factory=list)  # (gate id, message), e.g. "slo[ttft_p99]"
    passed_gates: list[str] = field(default_factory=list)  # "run SLO ttft_p99 <= 500 ms: 312.0 ms"
    drift: list[str] = field(default_factory=list)  # --llmbench-drift-fail: answers below the similarity
    baseline_note: str | None = None  # why no baseline was compared with although one was asked for
    sample_warnings: list[str] = field(default_factory=list)  # compare limits judged on too few samples
    undecided: list[str] = field(default_factory=list)  # run SLOs whose interval straddles the limit, not failed
    min_change: float = MIN_CHANGE  # the smallest change the table marks worse or better
    capacity: list[str] = field(default_factory=list)  # --llmbench-capacity-min: the capacity found was below it

    @property
    def failed(self) -> bool:
        return bool(self.slo_misses or self.regressions or self.drift or self.capacity)

    def failures(self) -> list[str]:
        return [m.message for m in self.slo_misses] + self.regressions + self.drift + self.capacity

    def to_dict(self) -> GatesSection:
        return {
            "passed": not self.failed,
            "failed": [{"gate": gate, "message": message} for gate, message in self.failed_gates],
            "passed_gates": self.passed_gates,
            "baseline_note": self.baseline_note,
            "few_samples": self.sample_warnings,
            "undecided": self.undecided,
            "slo_misses": [m.to_dict() for m in self.slo_misses],
            "comparison": None if self.baseline_path is None else Comparison(
                baseline=self.baseline_path,
                warnings=self.pairing.warnings if self.pairing else [],
                shared_tests=self.pairing.shared if self.pairing else None,
                per_test=[d.to_dict() for d in self.pairing.per_test] if self.pairing else [],
                deltas=[d.entry() for d in self.deltas],
                min_change=self.min_change,
                regressions=self.regressions,
                drift=self.drift,
            ),
        }

    def table(self) -> list[str]:
        return format_table(self.deltas, self.min_change) if self.deltas else []


@dataclass
class Gates:
    slos: list[RunSlo]
    thresholds: list[Threshold]
    baseline: Batch | None
    baseline_path: Path | None
    drift_fail: float | None = None  # fail when an answer's similarity to the baseline's falls below this
    note: str | None = None  # why there is no baseline although one was asked for (a first run)
    few_samples: str = "warn"  # a compare limit on a percentile with too few samples: "warn" (judge it) or "fail"
    undecided: str = "warn"  # a run SLO its interval straddles: "warn", "pass" or "fail" (--llmbench-slo-undecided)
    min_change: float = MIN_CHANGE  # --llmbench-compare-min-change, in percent

    @classmethod
    def parse(cls, slo: tuple[str, ...], compare_fail: tuple[str, ...], baseline_path: Path | None = None,
              note: str | None = None, few_samples: str = "warn", drift_fail: float | None = None,
              undecided: str = "warn", min_change: float = MIN_CHANGE) -> Gates:
        """Raises ValueError naming the bad SLO, threshold, baseline file, few-samples or undecided rule.

        ``baseline_path`` is ``--llmbench-compare`` resolved to a batch file (a folder or ``latest`` names one);
        ``note`` says why there is none when one was asked for.
        """
        if drift_fail is not None and baseline_path is None and note is None:
            raise ValueError("--llmbench-drift-fail compares answers with a baseline: add --llmbench-compare RUN")
        if few_samples not in FEW_SAMPLES:
            raise ValueError(f"--llmbench-few-samples: expected {' or '.join(FEW_SAMPLES)}, got {few_samples!r}")
        if undecided not in UNDECIDED:
            raise ValueError(f"--llmbench-slo-undecided: expected {', '.join(UNDECIDED)}, got {undecided!r}")
        baseline = load_baseline(baseline_path) if baseline_path else None
        return cls(slos=parse_run_slos(slo),
                   thresholds=[parse_threshold(spec) for spec in compare_fail],
                   baseline=baseline, baseline_path=baseline_path, drift_fail=drift_fail, note=note,
                   few_samples=few_samples, undecided=undecided, min_change=min_change)

    @property
    def active(self) -> bool:
        return bool(self.slos or self.thresholds or self.baseline or self.note)

    def check(self, aggregate: dict[str, Any], rows: list[Row] | None = None,
              run: RunInfo | None = None) -> GateResult:
        """SLOs on this run's figures; the baseline on the tests both runs share (``rows``: this run's batch rows,
        ``run``: its run record), with a warning for each way the runs differ."""
        result = GateResult(min_change=self.min_change)
        for slo in self.slos:
            misses = check_run_slos([slo], aggregate, self.undecided)
            if misses:
                result.slo_misses += misses
                result.failed_gates.append((f"slo[{slo.name}]", misses[0].message))
            else:
                unsure = " (undecided)" if verdict(slo, aggregate) == "undecided" else ""
                result.passed_gates.append(f"run SLO {slo.text}{unsure}: measured {measured_text(slo, aggregate)}")
        if self.undecided == "warn":
            result.undecided += undecided_warnings(self.slos, aggregate)
        if self.baseline is None and self.note:
            unchecked = "; the --llmbench-compare-fail limits were not checked" if self.thresholds else ""
            result.baseline_note = self.note + unchecked
        if self.baseline is not None:
            result.baseline_path = str(self.baseline_path)
            before, now = self.baseline["aggregate"], aggregate
            before_rows, now_rows = self.baseline.get("tests") or [], rows or []
            if rows is not None and self.baseline.get("tests"):
                result.pairing = pair(self.baseline, rows, run or {}, level_of(aggregate))
                if result.pairing.only_baseline or result.pairing.only_now:
                    keys = shared_keys(self.baseline, rows)
                    before = shared_aggregate(self.baseline["tests"], keys, before)
                    now = {**aggregate, **shared_aggregate(rows, keys, aggregate)}
                    before_rows, now_rows = only(before_rows, keys), only(now_rows, keys)
            tested = (before_rows, now_rows) if before_rows and now_rows else None  # an old baseline may have none
            result.deltas = compare(before, now, metrics_to_compare(self.thresholds), tested, level_of(aggregate))
            for threshold in self.thresholds:
                self._check_threshold(threshold, result)
            if self.drift_fail is not None:
                self._check_drift(result, rows or [])
        return result

    def _check_drift(self, result: GateResult, rows: list[Row]) -> None:
        assert self.drift_fail is not None
        result.drift = drift_failures(rows, self.drift_fail)
        if result.drift:
            result.failed_gates.append(("drift[answers]", result.drift[0]))
        else:
            result.passed_gates.append(f"every compared answer's similarity to the baseline >= {self.drift_fail:g}")

    def _check_threshold(self, threshold: Threshold, result: GateResult) -> None:
        """One ``--llmbench-compare-fail`` limit; a percentile on too few samples, either side, is judged with a
        warning, or under ``--llmbench-few-samples fail`` fails unjudged (metrics/samples.py)."""
        delta = next(d for d in result.deltas if d.name == threshold.metric)
        short = delta.short()
        if short and self.few_samples == "fail":
            broken = [f"{threshold.metric} not judged against the baseline: {short} (--llmbench-few-samples fail)"]
        else:
            broken = [message + _note(short) for message in check_regressions(result.deltas, [threshold])]
            if short:
                result.sample_warnings.append(f"--llmbench-compare-fail {threshold.metric} was judged on {short}")
        if broken:
            result.regressions += broken
            result.failed_gates.append((f"compare[{threshold.metric}]", broken[0]))
        else:
            change = "n/a" if delta.change_pct is None else f"{delta.change_pct:+.1f}%"
            tested = "" if delta.significance is None else f", {describe(delta.significance)}"
            result.passed_gates.append(f"{threshold.metric} {change} against the baseline, {threshold.text}{tested}"
                                       + _note(short))


def _note(short: str | None) -> str:
    """What a verdict on too few samples says after its figure: " (p99 of 8 samples, needs 368 for 95%)"."""
    return f" ({short})" if short else ""
