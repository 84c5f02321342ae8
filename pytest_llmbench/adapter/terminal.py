"""What a person sees: the live progress line during the run and the summary section after it.

Only the controller draws. On a terminal the line redraws in place; in a log (CI) it is a plain line now
and then, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ..batch import Batch
from ..metrics.samples import interval_of, level_of, rule, vouched
from ..metrics.server_timing import summary_line as server_timing_line
from ..metrics.stats import metric_key
from ..result import METRICS
from ..session.progress import ExecutionProgress
from ..session.tracing import summary_line as tracing_line
from ..textsafe import escape_for_terminal
from .gate_reports import gate_summary_lines
from .internals import terminal_line

LOG_INTERVAL_S = 10.0  # one plain line this often when not on a terminal ...
LOG_STEP_PCT = 10  # ... or when another tenth of the run is done, ...
LOG_MIN_GAP_S = 2.0  # ... but never closer together: a short run's log is pytest's own, then the summary
REDRAW_INTERVAL_S = 0.1  # a terminal redraw costs little, but thousands of them still add up


def _marks() -> tuple[str, str]:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return ("✓", "✗") if encoding.startswith("utf") else ("ok ", "fail ")


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_text(p: ExecutionProgress) -> str:
    ok, bad = _marks()
    failed = p.completed_tests - p.passed_tests
    return (f"llmbench {p.completed_tests}/{p.total_tests} {ok}{p.passed_tests} {bad}{failed}"
            + (f" (resumed {p.resumed_tests})" if p.resumed_tests else "")
            + f" | {p.tests_per_second:.1f} tests/s | {p.output_throughput:.0f} tok/s"
            f" | ETA {clock(p.estimated_remaining_time)}" + _load_text(p))


def _load_text(p: ExecutionProgress) -> str:
    text = "" if p.in_flight is None else f" | in flight {p.in_flight}"
    if p.offered_rate is not None:
        achieved = "?" if p.achieved_rate is None else f"{p.achieved_rate:.1f}"
        text += f" | sent {achieved}/{p.offered_rate:g} req/s"
    return text


class ProgressLine:
    """Draws ExecutionProgress: in place on a terminal, as occasional plain lines otherwise."""

    def __init__(self, reporter: Any, *, live: bool) -> None:
        self.reporter = reporter
        self.live = live
        self._drawn = False
        self._width = 0
        self._last_draw = 0.0 if live else time.monotonic()
        self._last_step = 0

    def update(self, progress: ExecutionProgress) -> None:
        now = time.monotonic()
        last = progress.completed_tests >= progress.total_tests
        if self.live:
            if last or now - self._last_draw >= REDRAW_INTERVAL_S:
                self._redraw(progress_text(progress))
                self._last_draw = now
            return
        step = progress.completed_tests * 100 // max(progress.total_tests, 1) // LOG_STEP_PCT
        gap = now - self._last_draw
        if not last and (gap >= LOG_INTERVAL_S or (step > self._last_step and gap >= LOG_MIN_GAP_S)):
            self._open_line()
            # No newline of our own: pytest starts its next line (a file name, a verbose test line) with one,
            # so a newline here would leave a blank line after every progress line.
            self.reporter.write(progress_text(progress))
            self._last_step, self._last_draw = step, now

    def _redraw(self, text: str) -> None:
        if not self._drawn:
            self._open_line()
        terminal_line(self.reporter, text, pad_to=self._width)  # spaces only over what the last line left
        self._drawn, self._width = True, len(text)

    def _open_line(self) -> None:
        """Start on a line of our own when pytest left one open (its dots, a file name)."""
        if terminal_line(self.reporter):
            self.reporter.write("\n")
            self.reporter.currentfspath = None  # so pytest names the file again before its next dot

    def interrupt(self) -> None:
        """Leave the live line where it is before pytest writes something of its own."""
        if self.live and self._drawn:
            self.reporter.write("\n")
            self.reporter.currentfspath = None
            self._drawn, self._width = False, 0


def is_live_terminal(reporter: Any) -> bool:
    isatty = getattr(reporter, "isatty", False)
    return bool(isatty() if callable(isatty) else isatty)


def safe(text: Any) -> str:
    return escape_for_terminal(str(text))


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


def with_interval(value: Any, ci: tuple[float | None, float | None] | None) -> str:
    """A percentile with its confidence interval, compactly: "812.0 (±40.2)", the wider of the interval's two
    sides from the figure; the bare figure when it carries no interval or an open one."""
    if value is None or ci is None or ci[0] is None or ci[1] is None:
        return _ms(value)
    return f"{_ms(value)} (±{max(value - ci[0], ci[1] - value):,.1f})"


TABLE_STATS = (("n", "count"), ("mean", "mean"), ("std", "std"), ("min", "min"), ("p50", "p50"), ("p90", "p90"),
               ("p95", "p95"), ("p99", "p99"), ("p99.9", "p99_9"), ("max", "max"))


def resumed_line(resumed: dict[str, Any], rows: int) -> str:
    """What a resumed run took from its earlier sessions and what it sent again."""
    sessions = resumed.get("sessions") or []
    ended = "; ".join(f"{s.get('started')}: {s.get('results')} results, {s.get('ended')}" for s in sessions)
    dropped = (resumed.get("recorded") or 0) - (resumed.get("kept") or 0)
    return (f"resumed {resumed.get('kept')} recorded results of {resumed.get('run_dir')} ({ended}); "
            f"{rows - (resumed.get('kept') or 0)} results from this session"
            + (f"; {dropped} recorded results not kept (a sweep level cut short, or tests not selected)"
               if dropped else ""))


def drift_lines(batch: Batch, shown: int = 5) -> list[tuple[str, dict[str, bool]]]:
    """Answer drift against the baseline: counts per level, then the regressions and the most changed answers."""
    drift, changes = batch.get("drift"), batch.get("answer_changes") or []
    if not drift:
        return []
    lowest = drift.get("min_similarity")
    counts = (f"answers against the baseline: {drift['compared']} compared, {drift['identical']} identical, "
              f"{drift['normalized_equal']} equal but for case, spacing or punctuation, {drift['changed']} changed")
    cosine = drift.get("min_cosine")
    lowest_of = [f"lowest similarity {lowest:.2f}"] if lowest is not None else []
    lowest_of += [f"lowest cosine {cosine:.2f} by {drift['semantic']['model']}"] if cosine is not None and isinstance(
        drift.get("semantic"), dict) else []
    lines: list[tuple[str, dict[str, bool]]] = [
        (counts + (f" ({', '.join(lowest_of)})" if lowest_of else ""), {})]
    regressions = [c for c in changes if c.get("outcome") == "regression"]
    if regressions:
        lines.append((f"answer checks that passed in the baseline and fail now: "
                      f"{', '.join(c['test_id'] for c in regressions[:shown])}"
                      + (" …" if len(regressions) > shown else ""), {"red": True, "bold": True}))
    most = [f"{c['test_id']} {c['similarity']:.2f}" for c in changes if c.get("level") == "changed"][:shown]
    if most:
        lines.append((f"most changed answers: {', '.join(most)}", {}))
    lines += [(f"answer drift WARNING: {note}", {"yellow": True}) for note in drift.get("sampling_warnings") or []]
    return lines


def write_summary(reporter: Any, batch: Batch, files: list[str]) -> None:
    """The llmbench section of pytest's summary, from the batch record."""
    agg = batch["aggregate"]
    reporter.write_sep("=", "llmbench summary", bold=True)  # as pytest starts its own sections: on a new line
    target = (batch.get("run") or {}).get("target")
    if target:
        reporter.write_line(safe(target["line"]))
    if batch.get("partial"):
        reporter.write_line(f"PARTIAL RUN: {safe(batch.get('partial_reason'))}", yellow=True, bold=True)
    resumed = batch.get("resumed_from")
    if resumed:
        reporter.write_line(safe(resumed_line(resumed, len(batch.get("tests") or ()))), bold=True)
    reporter.write_line(
        f"tests {agg['total_tests']}: {agg['passed_tests']} passed, {agg['total_tests'] - agg['passed_tests']} failed"
        f" | requests {agg['success_rate'] * 100:.1f}% successful | wall time {agg['wall_time_s']:.2f}s")
    reporter.write_line(
        f"tokens: {_prompt_tokens(agg)} prompt, {agg['total_completion_tokens']} completion"
        + (f" ({agg['estimated_token_counts']} results estimated)" if agg.get("estimated_token_counts") else "")
        + f" | {agg['output_throughput']:.1f} tok/s aggregate | {agg['request_throughput']:.2f} req/s")
    if agg.get("timing_degraded_requests"):
        reporter.write_line(f"client fell behind on {agg['timing_degraded_requests']} requests: their TTFT, ITL and "
                            "TPOT are not known (timing_degraded) and are left out of the figures below", yellow=True)
    _write_metric_table(reporter, agg)
    for line in (server_timing_line(batch.get("server_timing")), tracing_line(batch.get("tracing"))):
        if line is not None:
            reporter.write_line(safe(line))
    models = {name: vouched(model) for name, model in (batch.get("models") or {}).items()}
    if len(models) > 1:
        for name, model in sorted(models.items()):
            reporter.write_line(
                f"model {safe(name)}: {model['total_tests']} tests, {model['success_rate'] * 100:.1f}% ok"
                f" | latency p50 {_ms(model.get('p50_latency_ms'))} p99 {_ms(model.get('p99_latency_ms'))} ms"
                + (f" | TTFT p50 {_ms(model.get('p50_ttft_ms'))} ms" if model.get("p50_ttft_ms") is not None else "")
                + f" | {_ms(model.get('mean_tokens_per_second'))} tok/s")
    if agg.get("evaluation_pass_rate") is not None:
        score = agg.get("mean_reasoning_score")
        valid = agg.get("schema_valid")
        reporter.write_line(f"answers: {agg['evaluation_pass_rate'] * 100:.1f}% passed their checks"
                            + ("" if score is None else f" | mean reasoning score {score:.2f}")
                            + ("" if valid is None else f" | structured output validity {valid * 100:.1f}%"))
    for line, markup in drift_lines(batch):
        reporter.write_line(safe(line), **markup)
    _write_categories(reporter, batch.get("categories") or {})
    if batch.get("hardware"):
        _write_hardware(reporter, batch["hardware"] or {})
    if batch.get("alerts"):
        reporter.write_line(f"alerts: {len(batch['alerts'])} (see the warnings summary)", yellow=True)
    slowest = batch.get("slowest") or []
    if slowest:
        reporter.write_line("slowest: " + ", ".join(
            f"{safe(s.get('label') or s['test_id'])} {s['execution_time']:.2f}s" for s in slowest))
    for missing in batch.get("missing_files") or []:
        reporter.write_line(f"NOT WRITTEN: {safe(missing['path'])} ({safe(missing['reason'])})", red=True)
    for path in files:
        reporter.write_line(f"results: {safe(path)}")


def _write_table(reporter: Any, header: list[str], rows: list[list[str]]) -> None:
    """Columns sized to their widest cell, header included: a long figure never runs into its neighbour and a
    long name is never cut (two names cut alike would read as one). First column left, the rest right."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        reporter.write_line("  ".join(cells).rstrip())


def _prompt_tokens(agg: dict[str, Any]) -> str:
    """The prompt token total, or "?" where the server sent no count: unknown is not 0."""
    unknown = agg.get("unknown_prompt_tokens") or 0
    if unknown and unknown >= (agg.get("successful_tests") or 0):
        return "?"
    return f"{agg['total_prompt_tokens']}" + (f" (+{unknown} unknown)" if unknown else "")


def _write_metric_table(reporter: Any, agg: dict[str, Any]) -> None:
    """Pooled statistics of every metric that was measured, one row each; "-" for a percentile resting on too few
    samples (metrics/samples.py), said once under the table; a percentile carries its confidence interval's
    half-width, and the table's last line says at what level."""
    metrics = [(metric.label, metric.key) for metric in METRICS if agg.get(f"count_{metric.key}")]
    if not metrics:
        return
    shown = vouched(agg)
    rows = [[label, *(str(agg[f"count_{metric}"]) if stat == "count" else
                      with_interval(shown.get(key := metric_key(stat, metric)), interval_of(key, agg))
                      for _, stat in TABLE_STATS)] for label, metric in metrics]
    _write_table(reporter, ["", *(title for title, _ in TABLE_STATS)], rows)
    if any(shown.get(key) is None and agg.get(key) is not None for key in agg):
        reporter.write_line(f"  -: {rule(agg)}")
    if any("±" in cell for row in rows for cell in row):
        reporter.write_line(f"  ±: {level_of(agg) * 100:g}% confidence interval (order statistics)")


def _write_categories(reporter: Any, categories: dict[str, dict[str, Any]]) -> None:
    if len(categories) < 2:
        return
    rows = []
    for name, cat in sorted((name, vouched(figures)) for name, figures in categories.items()):
        score, evaluated = cat.get("mean_reasoning_score"), cat.get("evaluation_pass_rate")
        rows.append([safe(name), str(cat["total_tests"]), f"{cat['success_rate'] * 100:.1f}%",
                     _ms(cat.get("p50_latency_ms")), _ms(cat.get("mean_tokens_per_second")),
                     "-" if evaluated is None else f"{evaluated * 100:.0f}%", "-" if score is None else f"{score:.2f}"])
    _write_table(reporter, ["category", "tests", "ok%", "p50 ms", "tok/s", "eval%", "score"], rows)


def _write_hardware(reporter: Any, hw: dict[str, Any]) -> None:
    gpus = ", ".join(safe(name) for name in hw.get("gpu_devices") or []) or \
        f"none ({safe(hw.get('gpu_unavailable_reason') or 'not found')})"
    reporter.write_line(f"hardware: GPU {gpus} | CPU mean {_ms(hw.get('cpu_mean_pct'))}%"
                        f" peak {_ms(hw.get('cpu_peak_pct'))}% | memory peak {_ms(hw.get('memory_peak_gb'))} GB"
                        f" ({_ms(hw.get('memory_peak_pct'))}%)")
    for gpu in hw.get("gpus") or []:
        reporter.write_line("  " + " | ".join(f"{key} {_ms(value) if isinstance(value, float) else safe(value)}"
                                              for key, value in gpu.items()))
    energy = hw.get("gpu_energy_j")
    if energy:
        per_joule = f" | {hw['tokens_per_joule']:.2f} tokens/J" if hw.get("tokens_per_joule") else ""
        reporter.write_line(f"energy: {energy:,.1f} J{per_joule}")


def write_gates(reporter: Any, gates: Any) -> None:
    """The baseline it was compared with, its table, then every gate: passed ones and failed ones."""
    if gates.baseline_path:
        reporter.write_line(f"baseline: {safe(gates.baseline_path)}")
    elif gates.baseline_note:
        reporter.write_line(f"baseline: none: {safe(gates.baseline_note)}")
    pairing = gates.pairing
    for warning in pairing.warnings if pairing else []:
        reporter.write_line(f"baseline WARNING: {safe(warning)}", yellow=True)
    for line in gates.table():
        reporter.write_line(line)
    worst = pairing.largest_regressions() if pairing else []
    if worst:
        reporter.write_line("largest regressions: " + ", ".join(
            f"{safe(d.test_id)}{f'[{safe(d.model)}]' if d.model else ''} {d.baseline_s:.2f}s -> {d.now_s:.2f}s "
            f"({d.change_pct:+.0f}%)" for d in worst))
    for line, markup in gate_summary_lines(gates):
        reporter.write_line(safe(line), **markup)
