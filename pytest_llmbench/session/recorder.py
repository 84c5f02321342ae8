"""The controller's record of a run: every result that arrives is written at once and reduced to a row.

Only the controller records, so per-test files and the batch file have one writer whatever the worker count;
response texts are written and dropped, which keeps the controller's memory flat over long runs.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..batch import SCHEMA_VERSION, Batch, Failure, LostTest, Row, RunInfo
from ..http.redact import Secrets
from ..metrics.drift import BaselineAnswers, sampling_of
from ..metrics.hardware.monitor import ErrorRateAlert, PerformanceMonitor
from ..metrics.hardware.window import joules_per_token
from ..metrics.server.store import ServerStore
from ..metrics.server_timing import ServerTimingTally
from ..metrics.stats import POOLED, StatsAccumulator, quantiles_key
from ..metrics.timeline import uncovered
from ..metrics.workload import workload_section
from ..result import METRICS, TestResult
from .handoff import Delivery
from .journal import Journal
from .load.record import LoadRecord
from .progress import ExecutionProgress, ProgressTracker
from .storage import COMPLETION_SUFFIX, ResultWriter, WriteFailure

# A row carries every scalar metric; per-chunk ones (ITL) go to the statistics only, or rows would hold every chunk.
ROW_FIELDS = ("test_id", "test_name", "category", "model", "success", "prompt_tokens", "completion_tokens",
              "tokens_estimated", "attempts", "error_message", "reasoning_score", "timing_degraded", "server_timing",
              "trace_id", "requested_input_tokens", "requested_output_tokens", "input_tokens_estimated",
              "stopped_early", "turn", "send_at_s", "api_type", "embedding_dimensions",
              *(metric.field for metric in METRICS if not metric.per_chunk))
PER_CHUNK = tuple(metric for metric in METRICS if metric.per_chunk)


EXCERPT_CHARS = 300  # of a failed test's answer, kept in the batch for the report


def row_of(result: TestResult) -> dict[str, Any]:  # a Row once _count() has added the run's columns
    """The batch file's row for one test: its figures without the response text (a failure keeps an excerpt)."""
    row = {name: getattr(result, name) for name in ROW_FIELDS}
    for metric in PER_CHUNK:  # one mean per request in the row: ITL's chunks are too many
        values = getattr(result, metric.field)
        row[metric.row_field] = sum(values) / len(values) if values else None
        row[f"{metric.field}_count"] = len(values)  # with the mean, the pooled mean of any subset of rows
    evaluation, slo = result.evaluation_result, result.slo_result
    row["evaluation_passed"] = evaluation.get("passed") if evaluation else None
    row["slo_passed"] = slo.get("passed") if slo else None
    row["schema_valid"] = schema_valid(evaluation)
    if not result.success or row["evaluation_passed"] is False or row["slo_passed"] is False:
        row["failure"] = _failure_of(result)
    return row


def schema_valid(evaluation: dict[str, Any] | None) -> bool | None:
    """Whether the answer fit its ``expected.json_schema`` (structured output validity); None: no schema asked."""
    checks = [c for c in (evaluation or {}).get("checks") or [] if c.get("name") == "json_schema"]
    return all(c.get("passed") for c in checks) if checks else None


def _failure_of(result: TestResult) -> Failure:
    """What a reader of the report needs to see why a test failed, without opening its files."""
    checks = [c for c in (result.evaluation_result or {}).get("checks") or [] if not c.get("passed")]
    misses = (result.slo_result or {}).get("misses") or []
    return {
        "checks": [f"{c.get('name')}: {c.get('detail') or ''}"[:EXCERPT_CHARS] for c in checks[:10]],
        "slo_misses": [str(m.get("message") if isinstance(m, dict) else m)[:EXCERPT_CHARS] for m in misses[:10]],
        "answer_excerpt": (result.response_text or "")[:EXCERPT_CHARS],
    }


def _chunks(result: TestResult) -> dict[str, Any]:
    """The per-chunk figures (ITL) that go to the statistics but not into a row."""
    return {m.field: getattr(result, m.field) for m in METRICS if m.per_chunk}


@dataclass
class Recorder:
    output: Path
    stats: StatsAccumulator = field(default_factory=StatsAccumulator)
    monitor: PerformanceMonitor | None = None
    server: ServerStore | None = None  # the servers' /metrics readings, when scraped
    error_alert: ErrorRateAlert | None = None
    rows: list[Row] = field(default_factory=list)
    lost: list[LostTest] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    secrets: Secrets = field(default_factory=lambda: Secrets(()))  # masked in every result: a hook may add one
    load: LoadRecord | None = None  # the timeline and the load section
    test_files: str = "all"  # per-test files: "all", "failed" (items that did not pass) or "none"
    journal: Journal | None = None  # the run's durable record (set once the run folder exists)
    drift: BaselineAnswers | None = None  # the baseline's answers, with --llmbench-compare
    drift_fail: float | None = None  # --llmbench-drift-fail, recorded in the batch's ``drift``
    spans: Any = None  # a tracing.SpanExport with --llmbench-otlp: each recorded result becomes a span
    collection_warnings: list[str] = field(default_factory=list)  # e.g. a dataset's malformed lines, each once

    def __post_init__(self) -> None:
        self.batch_failure: WriteFailure | None = None
        self.writer = ResultWriter(self.output)
        self.tracker = ProgressTracker()
        self._unseen_alerts: list[str] = []
        self._span: list[float] = []  # [first request started, last answer done], monotonic
        self._starts: list[float | None] = []  # each row's request start, monotonic
        self._resumed_spans: dict[int, list[float]] = {}  # earlier sessions' [first start, last end], Unix time
        self._windows = array("d")  # every request's start and end, flat: what an LLM judge's time may overlap
        self._judged: list[tuple[float, float]] = []  # when LLM judges graded (monotonic)
        self._failures_reported = 0
        self.server_timing = ServerTimingTally()

    @property
    def first_sent(self) -> float | None:
        """When the run's first request was sent (monotonic): the origin of the rows' ``start_s``."""
        return self._span[0] if self._span else None

    @property
    def progress(self) -> ExecutionProgress:
        return self.tracker.progress

    def record(self, delivery: Delivery, *, passed: bool) -> ExecutionProgress:
        """Take one finished test: attach its hardware window, write its files, keep its row.

        ``passed`` is the item's outcome as pytest reported it (request, answer checks, SLOs, hooks).
        """
        data = self.secrets.mask(delivery.result.to_dict())  # a hook may have put a secret anywhere
        result = TestResult.from_dict(data) if self.secrets.ordered else delivery.result
        window = delivery.window
        if window:
            self._span = [min(self._span[0], window[0]), max(self._span[1], window[1])] if self._span else list(window)
            self._windows.extend(window)
        if delivery.judged:
            self._judged.append(delivery.judged)
        if self.monitor is not None and window:
            metrics = self.monitor.window(*window)
            metrics["joules_per_token"] = joules_per_token(metrics, result.completion_tokens)
            result.performance_metrics = data["performance_metrics"] = {**metrics, **result.performance_metrics}
        if self.server is not None and window:
            result.server_metrics = data["server_metrics"] = self.server.window(*window, result.completion_tokens)
        completion = None
        if self.test_files == "all" or (self.test_files == "failed" and not passed):
            written = self.writer.write_test(data, delivery.file_stem, delivery.subdir)
            completion = next((str(p.relative_to(self.output)) for p in written
                               if p.name.endswith(COMPLETION_SUFFIX)), None)
        progress = self._count(result, passed=passed, file_stem=delivery.file_stem, completion_file=completion,
                               started=window[0] if window else None, in_test=delivery.in_test,
                               label=delivery.label)
        row, sampling = self.rows[-1], sampling_of(result.request)
        if self.drift is not None and not delivery.in_test:
            row["answer_drift"] = self.drift.compare(row, result.response_text, sampling)
        if self.load is not None:
            self.load.add(delivery, result, row)
        if self.journal is not None and delivery.nodeid is not None and not delivery.in_test:
            self.journal.result(delivery.nodeid, delivery.phase, row, _chunks(result), result.response_text,
                                delivery.wall, sampling)
        if self.spans is not None:
            self.spans.request(result, delivery.wall)
        return progress

    def add_resumed(self, entry: dict[str, Any]) -> ExecutionProgress:
        """A result an earlier session of this run recorded (its journal entry): a row and in the statistics again,
        counted in the progress as done, never written again."""
        row = {**entry["row"], "resumed": True}
        if self.drift is not None:  # against this session's baseline, which may not be the earlier one's
            row["answer_drift"] = self.drift.compare(row, entry.get("answer") or "", entry.get("sampling") or {})
        wall = entry.get("wall")
        self._keep(row, entry.get("chunks") or {}, None)
        if wall:  # each earlier session's own span: the run's duration is the sum, without the gaps between
            span = self._resumed_spans.setdefault(entry.get("session", 0), [wall[0], wall[1]])
            span[:] = [min(span[0], wall[0]), max(span[1], wall[1])]
        if self.load is not None:
            self.load.add_resumed(entry["phase"], row, entry.get("chunks") or {}, wall)
        return self.tracker.update(name=row.get("test_name") or "", category=row.get("category"),
                                   success=bool(row.get("success")), passed=bool(row.get("passed")),
                                   execution_time=row.get("execution_time") or 0.0,
                                   completion_tokens=row.get("completion_tokens"),
                                   tokens_per_second=row.get("tokens_per_second"), resumed=True)

    def record_lost(self, nodeid: str, message: str) -> ExecutionProgress:
        """A test that ended without a result (a crashed worker, an error outside the request)."""
        test_id = nodeid.rsplit("::", 1)[-1]
        message = self.secrets.clip(message, 500) or "no result"  # masked before it is cut
        result = TestResult(test_id=test_id, test_name=test_id, success=False, error_message=message)
        self.lost.append({"nodeid": nodeid, "error_message": message})
        return self._count(result, passed=False, file_stem=None)

    def _count(self, result: TestResult, *, passed: bool, file_stem: str | None, completion_file: str | None = None,
               started: float | None = None, in_test: bool = False, label: str | None = None) -> ExecutionProgress:
        """The one place a result enters the run's record: error-rate alert, row, statistics, progress.

        ``in_test``: one of a hand-written test's llm_client requests. It is a row and counts in the statistics,
        but not in the progress, which counts the run's llmbench items against their total."""
        self._note_alert(self.error_alert.add(result.success) if self.error_alert else None)
        row = row_of(result)
        row["passed"], row["file_stem"], row["completion_file"] = passed, file_stem, completion_file
        row["label"] = label or result.test_id  # t01[c16-r3]: which repetition, level or model of the test
        row["start_s"] = None  # set by build_batch, from the first request on
        row["llm_client"] = in_test
        self._keep(row, _chunks(result), started)
        if in_test or (result.turn or 1) > 1:  # a conversation counts once, by its first turn
            return self.tracker.progress
        return self.tracker.update(name=result.test_name, category=result.category, success=result.success,
                                   passed=passed, execution_time=result.execution_time,
                                   completion_tokens=result.completion_tokens,
                                   tokens_per_second=result.tokens_per_second)

    def _keep(self, row: dict[str, Any], chunks: dict[str, Any], started: float | None) -> None:
        self._starts.append(started)
        self.rows.append(cast(Row, row))  # every key of a Row is set by now
        self.stats.add({**row, **chunks})
        self.server_timing.add(row.get("success"), row.get("server_timing"))

    def _note_alert(self, message: str | None) -> None:
        if message:
            self.alerts.append(message)
            self._unseen_alerts.append(message)

    def pop_new_alerts(self) -> list[str]:
        """Alerts and monitoring problems not yet shown, each once: the health warnings of the run."""
        if self.monitor is not None:
            for message in self.monitor.pop_new_alerts() + self.monitor.pop_new_problems():
                self._note_alert(message)
        new, self._unseen_alerts = self._unseen_alerts, []
        return new

    def pop_new_write_failures(self) -> list[str]:
        failures = self.writer.failures[self._failures_reported:]
        self._failures_reported = len(self.writer.failures)
        return [f"could not write {f.path}: {f.reason}" for f in failures]

    def build_batch(self, *, run: RunInfo, partial_reason: str | None, wall_time_s: float) -> Batch:
        """The batch file's content: the one place it is made (see batch.py for its declared shape)."""
        aggregate = self._aggregate(wall_time_s)
        first = self._span[0] if self._span else 0.0
        for row, started in zip(self.rows, self._starts):  # send times for the report's timeline
            row["start_s"] = None if started is None else round(started - first, 6)
        return {
            "schema_version": SCHEMA_VERSION,
            "partial": partial_reason is not None,
            "partial_reason": partial_reason,
            "run": run,
            "aggregate": aggregate,
            "categories": self.stats.by_category(),
            "models": self.stats.by_model(),
            "apis": self.stats.by_api(),
            "slowest": self.stats.slowest(5),
            "distributions": {quantiles_key(m): self.stats.quantiles(m.key) for m in POOLED if m.per_chunk},
            "lost_tests": self.lost,
            "collection_warnings": self.collection_warnings,
            "alerts": self.alerts,
            "hardware": self._hardware(aggregate),
            "missing_files": [{"path": str(f.path), "reason": f.reason} for f in self.writer.failures],
            "load": None if self.load is None else self.load.section(),
            "timeline": None if self.load is None else self.load.timeline_section(),
            "sweep": None if self.load is None else self.load.sweep_section(),
            "resumed_from": None,
            "drift": None if self.drift is None else self.drift.summary(self.rows, self.drift_fail),
            "answer_changes": None if self.drift is None else self.drift.changes(self.rows),
            "server_timing": self.server_timing.section(),
            "workload": workload_section(self.rows),
            "tests": self.rows,
        }

    def _hardware(self, aggregate: dict[str, Any]) -> dict[str, Any] | None:
        if self.monitor is None:
            return None
        hardware = self.monitor.summary(self.first_sent)
        energy, tokens = hardware.get("gpu_energy_j"), aggregate["total_completion_tokens"]
        hardware["tokens_per_joule"] = tokens / energy if energy and tokens else None
        return hardware

    def _aggregate(self, wall_time_s: float) -> dict[str, Any]:
        """Throughput over the requests' own span (as vLLM's ``duration``), not over pytest's start-up."""
        duration_s = self._span[1] - self._span[0] if self._span else (0.0 if self._resumed_spans else wall_time_s)
        if self._span and self._judged:  # a judge's time between requests is no request's: not in the rates
            inside = [(max(low, self._span[0]), min(high, self._span[1])) for low, high in self._judged]
            requests = iter(self._windows)
            duration_s -= uncovered(inside, zip(requests, requests))
        duration_s += sum(end - start for start, end in self._resumed_spans.values())
        aggregate = self.stats.summary(duration_s)
        aggregate["wall_time_s"] = wall_time_s
        # pytest's tests: a hand-written test's requests (all with its outcome) count once, by its node id
        tests = {row["test_id"]: row["passed"] for row in self.rows if row["llm_client"]}
        suite_rows = [row for row in self.rows if not row["llm_client"] and (row.get("turn") or 1) == 1]
        aggregate["total_requests"] = len(self.rows)
        aggregate["total_tests"] = len(suite_rows) + len(tests)
        aggregate["passed_tests"] = sum(row["passed"] for row in suite_rows) + sum(tests.values())
        return aggregate

    def use_folder(self, folder: Path) -> None:
        """Write into ``folder`` from now on (the run's own folder, once it exists)."""
        self.output = folder
        self.writer.directory = Path(folder)

    def end_journal(self, partial_reason: str | None, batch_path: Path | None) -> None:
        """The journal's last line for this session: a run that ended whole with its batch file is finished."""
        if self.journal is not None:
            self.journal.end(partial_reason, batch_path.name if batch_path is not None else None)
            self.journal.close()

    def write_batch(self, batch: Batch, started: Any) -> Path | None:
        """Every run with a result writes one, so that any run (one test included) can be a baseline. None when
        the write failed (``batch_failure`` then says why)."""
        path = self.writer.write_batch(batch, started)
        if path is None:
            self.batch_failure = self.writer.failures[-1]
        return path
