"""OpenTelemetry export (``--llmbench-otlp URL``): one span per request, one for the session, over OTLP/HTTP.

The controller makes the spans from the results it records, after the fact: each request span carries the ids its
``traceparent`` header announced (``http/trace_context.py``), so the server's own spans for that request are its
children in Jaeger, Tempo or Grafana; every request span links to the session's span. Spans leave through the
SDK's batch processor on its own thread, with a bounded queue; a collector that is slow or down costs the run
nothing but those spans: a full queue drops them, each export gives up after ``EXPORT_TIMEOUT_S`` (a failed one is
not retried: batches are dropped for ``RETRY_AFTER_S`` after it), the end of the session waits at most
``SHUTDOWN_WAIT_S`` for the last ones (not at all while the collector is failing), and every span that did not
arrive is counted.

The SDK and the exporter are an optional extra (``pip install pytest-llmbench[otel]``), imported only here.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from .._version import __version__
from ..exceptions import ConfigurationError
from ..http.trace_context import new_ids
from ..result import TestResult

QUEUE_SIZE = 4096  # spans waiting for export; past it new spans are dropped (and counted), never waited for
BATCH_SIZE = 512
EXPORT_TIMEOUT_S = 0.75  # one export's deadline: below the exporter's first backoff (0.8 s), so no retry
SHUTDOWN_WAIT_S = 3.0  # the longest the end of a session waits for the last spans to leave
RETRY_AFTER_S = 5.0  # after a failed export, batches are dropped at once for this long (the collector is down)
SCOPE = "pytest-llmbench"


def check(url: str | None) -> None:
    """Refuse a URL that is no http(s) URL, and an export the installed packages cannot make, before any test."""
    if url is None:
        return
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigurationError(f"--llmbench-otlp: expected an OTLP/HTTP URL such as "
                                 f"http://127.0.0.1:4318/v1/traces, got {url!r}")
    try:
        for module in ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"):
            importlib.import_module(module)
    except ImportError:
        raise ConfigurationError("--llmbench-otlp needs the OpenTelemetry SDK and its OTLP/HTTP exporter: "
                                 "pip install 'pytest-llmbench[otel]'") from None


class SpanExport:
    """Turns recorded results into spans and hands them to a batch processor; counts what never arrived."""

    def __init__(self, url: str, exporter: Any = None) -> None:
        import requests
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        session = requests.Session()
        session.trust_env = False  # the collector named, never a proxy from the environment
        inner = exporter or OTLPSpanExporter(endpoint=url, timeout=EXPORT_TIMEOUT_S, session=session)
        self._exporter = _Counting(inner)
        self._processor = BatchSpanProcessor(cast(Any, self._exporter), max_queue_size=QUEUE_SIZE,
                                             max_export_batch_size=BATCH_SIZE, schedule_delay_millis=200)
        self._resource = Resource.create({"service.name": SCOPE, "service.version": __version__})
        self._scope = InstrumentationScope(SCOPE, __version__)
        trace_id, span_id = new_ids()
        self.session = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False,
                                         trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        self.started_ns = time.time_ns()
        self.offered = 0
        self.report: dict[str, Any] | None = None

    def request(self, result: TestResult, wall: tuple[float, float] | None) -> None:
        """One request span, from the result and its window in Unix time (the end of the result otherwise)."""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import Status, StatusCode

        trace_id, span_id = (result.trace_id, result.span_id) if result.trace_id and result.span_id else new_ids()
        end = int(wall[1] * 1e9) if wall else time.time_ns()
        start = int(wall[0] * 1e9) if wall else end - int(result.execution_time * 1e9)
        context = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False,
                                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        events = []
        offset = 0.0
        for attempt in result.attempt_log[:-1]:  # every try but the last ended in a retry
            offset += attempt.elapsed_s
            events.append(Event("retry", {"attempt": attempt.number, "error": attempt.error or ""},
                                start + int(offset * 1e9)))
            offset += attempt.delay_s
        if result.ttft is not None:  # timed from the last try's start, which is the window's end minus its time
            events.append(Event("first token", {}, end - int((result.execution_time - result.ttft) * 1e9)))
        status = Status(StatusCode.OK) if result.success else Status(
            StatusCode.ERROR, result.error.kind if result.error else "failed")
        span = ReadableSpan("llmbench request", context=context, resource=self._resource,
                            attributes=_attributes(result), events=events, links=[trace.Link(self.session)],
                            kind=trace.SpanKind.CLIENT, status=status, start_time=start, end_time=end,
                            instrumentation_scope=self._scope)
        self.offered += 1
        self._processor.on_end(span)

    def finish(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """End the session span, let the last spans leave (bounded), and say how many arrived."""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan

        if self.report is not None:
            return self.report
        session = ReadableSpan("llmbench session", context=self.session, resource=self._resource,
                               attributes={k: v for k, v in attributes.items() if v is not None},
                               kind=trace.SpanKind.INTERNAL, start_time=self.started_ns, end_time=time.time_ns(),
                               instrumentation_scope=self._scope)
        self.offered += 1
        self._processor.on_end(session)
        closing = threading.Thread(target=self._processor.shutdown, name="llmbench-otlp-shutdown", daemon=True)
        closing.start()
        # past the wait the rest is abandoned (the thread is a daemon); a collector that is down gets no wait at all
        closing.join(0.0 if self._exporter.failing else SHUTDOWN_WAIT_S)
        exported = self._exporter.exported
        self.report = {"spans": self.offered, "exported": exported, "dropped": self.offered - exported,
                       "session_trace_id": f"{self.session.trace_id:032x}"}
        return self.report


class _Counting:
    """The exporter, counting the spans the collector accepted (everything else was dropped), and dropping batches
    at once for ``RETRY_AFTER_S`` after a failed export rather than retrying each against a collector that is down."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.exported = 0
        self.failed_at: float | None = None  # monotonic time of the last failed export; None once one succeeds

    @property
    def failing(self) -> bool:
        return self.failed_at is not None

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self.failed_at is not None and time.monotonic() - self.failed_at < RETRY_AFTER_S:
            return SpanExportResult.FAILURE
        try:
            outcome = self.inner.export(spans)
        except Exception:  # noqa: BLE001 - a broken exporter loses its spans, never the run
            outcome = SpanExportResult.FAILURE
        if outcome == SpanExportResult.SUCCESS:
            self.exported += len(spans)  # one export at a time: the processor's worker holds its lock
            self.failed_at = None
        else:
            self.failed_at = time.monotonic()
        return outcome

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _attributes(result: TestResult) -> dict[str, Any]:
    """The span's attributes: plain numbers and our own names; text only from the suite and what was sent."""
    found: dict[str, Any] = {
        "llmbench.test_id": result.test_id, "llmbench.suite_id": result.suite_id, "gen_ai.request.model": result.model,
        "gen_ai.usage.input_tokens": result.prompt_tokens, "gen_ai.usage.output_tokens": result.completion_tokens,
        "llmbench.outcome": "success" if result.success else (result.error.kind if result.error else "failed"),
        "llmbench.attempts": result.attempts, "llmbench.latency_s": result.execution_time,
        "llmbench.ttft_s": result.ttft, "llmbench.stream": result.stream,
        "llmbench.server_timing.source": (result.server_timing or {}).get("source"),
    }
    return {key: value for key, value in found.items() if value is not None}


def session_attributes(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The session span's attributes, from the batch's figures."""
    aggregate = batch.get("aggregate") or {}
    return {"llmbench.requests": aggregate.get("total_requests"), "llmbench.tests": aggregate.get("total_tests"),
            "llmbench.passed_tests": aggregate.get("passed_tests"),
            "llmbench.success_rate": aggregate.get("success_rate"), "llmbench.partial": bool(batch.get("partial"))}


def summary_line(section: dict[str, Any] | None) -> str | None:
    """One line for the terminal; the URL is not repeated (it may carry a credential)."""
    if not section:
        return None
    line = f"tracing: {section['exported']} of {section['spans']} spans exported over OTLP"
    return line + (f", {section['dropped']} dropped" if section["dropped"] else "") + \
        f" (session trace {section['session_trace_id']})"


def dropped_spans(section: dict[str, Any]) -> str:
    return (f"OpenTelemetry export: {section['dropped']} of {section['spans']} spans did not reach the collector "
            f"(down, slow or refusing); the run's own figures are complete")
