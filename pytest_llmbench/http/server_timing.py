"""What a server says about one request's time inside it: queue, prefill, decode, joined to the result.

Servers tell it in their own shapes, and only some of them:

- llama.cpp's ``llama-server``: a ``timings`` object on every answer and on a stream's last chunk (``prompt_ms``:
  prefill, ``predicted_ms``: decode; no queue, so no time counted from the request's arrival).
- vLLM (``--enable-per-request-metrics``, PR #46768; the request asks with ``include_metrics``): a ``metrics``
  object on the answer and on a stream's final usage chunk, ``queue_time_ms`` (queued to scheduled),
  ``time_to_first_token_ms`` (scheduled to first token: prefill, the queue not included) and
  ``generation_time_ms`` (first token to last: decode).
- TGI: headers ``x-queue-time``, ``x-inference-time`` and ``x-total-time`` (whole ms) on a whole JSON answer; a
  stream's headers leave before the times are known, so streams carry none.
- SGLang: ``meta_info`` (``queue_time`` and ``e2e_latency`` in seconds) where an answer carries one.

A server's figure is never trusted blindly: a value that is no number, not finite, negative, longer than the
client's own latency or later than the client's first token (beyond ``CLOCK_TOLERANCE_S``) is dropped and named in
``server_timing["dropped"]`` with a fixed reason, so a hostile server can put no text of its own in a report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..result import TestResult

CLOCK_TOLERANCE_S = 0.002  # two clocks read apart, and servers that round to the ms: what "longer" must pass
REPORT_KEYS = ("timings", "metrics", "meta_info")  # the objects a JSON answer or a stream chunk may carry
COMPONENTS = ("queue_time", "prefill_time", "decode_time", "server_ttft", "server_e2e_latency")
TGI_HEADERS = {"x-queue-time": "queue_time", "x-inference-time": "inference", "x-total-time": "server_e2e_latency"}
REQUEST_FIELDS = {"include_metrics": True}  # vLLM's opt-in; sent only with --llmbench-server-timing


class _Bad:
    """A value the server sent that is no duration, with the fixed reason it was refused."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Value = float | _Bad | None  # seconds, refused, or not sent


def keep_reports(chunk: Mapping[str, Any], kept: dict[str, Any]) -> None:
    """Keep a stream chunk's timing objects (the last of each kind wins: servers send them on the last chunk)."""
    for key in REPORT_KEYS:
        value = chunk.get(key)
        if isinstance(value, dict) and value:
            kept[key] = value


def with_request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body with the fields that ask servers for their per-request times (the test's own values win)."""
    return {**REQUEST_FIELDS, **body}


def read(reports: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> tuple[str, dict[str, Value]] | None:
    """(source, component -> seconds) from a body's (or stream's) timing objects, else from TGI's headers."""
    reports = reports if isinstance(reports, Mapping) else {}
    timings, metrics, meta = (reports.get(key) for key in REPORT_KEYS)
    if isinstance(timings, Mapping) and ("prompt_ms" in timings or "predicted_ms" in timings):
        return "llama.cpp", {"prefill_time": _number(timings.get("prompt_ms"), 1e-3),
                             "decode_time": _number(timings.get("predicted_ms"), 1e-3)}
    if isinstance(metrics, Mapping) and "queue_time_ms" in metrics:
        queue = _number(metrics.get("queue_time_ms"), 1e-3)
        prefill = _number(metrics.get("time_to_first_token_ms"), 1e-3)
        decode = _number(metrics.get("generation_time_ms"), 1e-3)
        return "vllm", {"queue_time": queue, "prefill_time": prefill, "decode_time": decode,
                        "server_ttft": _sum(queue, prefill), "server_e2e_latency": _sum(queue, prefill, decode)}
    if isinstance(meta, Mapping) and ("queue_time" in meta or "e2e_latency" in meta):
        return "sglang", {"queue_time": _number(meta.get("queue_time"), 1.0),
                          "server_e2e_latency": _number(meta.get("e2e_latency"), 1.0)}
    found = {name: headers.get(header) for header, name in TGI_HEADERS.items()} if headers is not None else {}
    if any(value is not None for value in found.values()):
        values = {name: _header_number(value) for name, value in found.items()}
        values.pop("inference")  # prefill and decode together: no component of ours, checked for shape only
        return "tgi", values
    return None


def join(result: TestResult, reports: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> None:
    """Set the result's server-side fields from what the server sent, dropping what cannot be right."""
    found = read(reports, headers)
    if found is None:
        return
    source, values = found
    dropped: dict[str, str] = {}
    for name in COMPONENTS:
        value = values.get(name)
        if isinstance(value, float):
            value = _plausible(name, value, result)
        if isinstance(value, _Bad):
            dropped[name] = value.reason
            value = None
        setattr(result, name, value)
    result.server_timing = {"source": source, "dropped": dropped}
    result.client_overhead = _overhead(result)


def _plausible(name: str, seconds: float, result: TestResult) -> Value:
    if seconds > result.execution_time + CLOCK_TOLERANCE_S:
        return _Bad("longer than the client's latency")
    if name == "server_ttft" and result.ttft is not None and seconds > result.ttft + CLOCK_TOLERANCE_S:
        return _Bad("later than the client's first token")
    return seconds


def _overhead(result: TestResult) -> float | None:
    """What the server did not see: network, HTTP layers and the client, at the first token where both sides
    timed it, else over the whole answer (a JSON answer arrives at once)."""
    if result.ttft is not None and result.server_ttft is not None:
        return result.ttft - result.server_ttft
    client = result.e2e_latency if result.e2e_latency is not None else result.execution_time
    if result.server_e2e_latency is not None and client:
        return client - result.server_e2e_latency
    return None


def _number(raw: Any, scale: float) -> Value:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return _Bad("not a number")
    if not math.isfinite(raw):
        return _Bad("not finite")
    if raw < 0:
        return _Bad("negative")
    return float(raw) * scale


def _header_number(raw: str | None) -> Value:
    """TGI writes whole milliseconds; anything else in the header is refused, never shown."""
    if raw is None:
        return None
    try:
        value = float(raw.strip()) if len(raw) <= 32 else math.nan
    except ValueError:
        return _Bad("not a number")
    return _number(value, 1e-3)


def _sum(*parts: Value) -> Value:
    """A figure made of others: unknown when any part is unknown or refused (that part is counted, not this)."""
    seconds = [part for part in parts if isinstance(part, float)]
    return math.fsum(seconds) if len(seconds) == len(parts) else None
