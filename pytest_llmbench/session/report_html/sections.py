"""The optional sections of a batch, which other features add, as chart columns: the load timeline, the sweep,
the hardware monitor's timeline and the server's metrics, all on the client's time axis (seconds from the first
request), and what the timelines mark (the levels' starts, the warm-up). Each reader accepts what it finds and
returns None for what is absent or malformed, so the report skips the chart instead of failing.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from ...batch import Batch, Row
from ...metrics.samples import shortfall
from ...metrics.server.catalog import timeline_title
from ...metrics.stats import finite_number, format_value

TIMELINE_POINTS = 200  # buckets of the throughput timeline derived from the rows
# The load timeline's per-bucket counts, shown per second, and its other series, by their display names
PER_SECOND = {"sent": "requests sent/s", "completed": "requests completed/s", "output_tokens": "output tokens/s",
              "errors": "errors/s"}
RENAMED = {"in_flight": "requests in flight"}
TIME_WEIGHTED = ("in_flight",)  # a bucket's request-seconds over its width
SWEEP_COLUMNS = (  # the level first, then its load, then the figures the SLOs usually gate
    ("level", "level"), ("concurrency", "concurrency"), ("offered_rate", "offered req/s"),
    ("achieved_rate", "sent req/s"), ("request_throughput", "done req/s"), ("goodput_throughput", "goodput req/s"),
    ("output_throughput", "output tok/s"), ("error_rate", "errors"), ("p50_latency_ms", "latency p50"),
    ("p99_latency_ms", "latency p99"), ("p50_ttft_ms", "TTFT p50"), ("p99_ttft_ms", "TTFT p99"),
    ("p50_tpot_ms", "TPOT p50"))


def derived_timeline(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]] | None:
    """Throughput and requests in flight over time from the rows' send times, for batches without a timeline."""
    spans = []
    for row in rows:
        start, seconds = finite_number(row.get("start_s")), finite_number(row.get("execution_time"))
        if start is not None and seconds is not None:
            spans.append((start, start + seconds, row.get("completion_tokens") or 0, bool(row.get("success"))))
    if len(spans) < 2:
        return None
    end = max(span[1] for span in spans)
    bucket = max(end / TIMELINE_POINTS, min(1.0, end / 20), 0.05)  # 1 s buckets unless the run is short
    count = int(end / bucket) + 1
    done, tokens, errors = [0.0] * count, [0.0] * count, [0.0] * count
    for _, finish, n_tokens, success in spans:
        slot = min(int(finish / bucket), count - 1)
        done[slot] += success
        errors[slot] += not success
        tokens[slot] += n_tokens
    starts = sorted(span[0] for span in spans)
    ends = sorted(span[1] for span in spans)
    times = [round((i + 0.5) * bucket, 4) for i in range(count)]
    in_flight = [bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t) for t in times]
    return {"t": times, "requests completed/s": [round(d / bucket, 3) for d in done],
            "output tokens/s": [round(x / bucket, 2) for x in tokens],
            "errors/s": [round(e / bucket, 3) for e in errors], "requests in flight": in_flight}


def _widths(points: list[dict[str, Any]], width: float, end_s: float | None) -> list[float]:
    """Each bucket's own length: the last one ends with the run (the last answer), not a whole bucket later, so its
    rate is not drawn as a collapse at the end."""
    widths = [width] * len(points)
    last = finite_number(points[-1].get("t"))
    if end_s is not None and last is not None and 0 < end_s - last < width:
        widths[-1] = end_s - last
    return widths


def batch_timeline(batch: Mapping[str, Any], end_s: float | None = None) -> dict[str, list[Any]] | None:
    """A section's timeline (a list of points, or a dict holding them under `buckets`) as numeric columns;
    counts per bucket of a load timeline become rates per second, the last bucket's over its own length."""
    section = batch.get("timeline")
    points = section.get("buckets") or section.get("points") if isinstance(section, dict) else section
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
        return None
    width = finite_number(section.get("bucket_s")) if isinstance(section, dict) else None
    widths = _widths(points, width, end_s) if width else []
    keys = [k for k in points[0] if all(finite_number(p.get(k)) is not None or p.get(k) is None for p in points)]
    columns = {}
    for key in keys:
        values = [finite_number(p.get(key)) for p in points]
        if width and key in PER_SECOND:
            columns[PER_SECOND[key]] = [None if v is None else round(v / w, 3) for v, w in zip(values, widths)]
        elif width and key in TIME_WEIGHTED:  # averaged over a whole bucket: over the last one's own length
            columns[RENAMED.get(key, key)] = [None if v is None else round(v * width / w, 3)
                                              for v, w in zip(values, widths)]
        else:
            columns[RENAMED.get(key, key)] = values
    return columns


def _first(mapping: dict[str, Any], *keys: str) -> Any:
    return next((mapping[k] for k in keys if mapping.get(k) is not None), None)


def _missed(slo: Mapping[str, Any], value: float | None) -> bool:
    return value is not None and (value > slo["limit"] if slo["op"] == "<=" else value < slo["limit"])


def sweep_view(sweep: Any, slos: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """The sweep section per level: its load, its figures (the SLO-gated ones marked where they missed) and the
    knee; the charts plot each SLO's figure against the offered load with the SLO's limit."""
    levels = sweep.get("levels") if isinstance(sweep, dict) else sweep
    if not isinstance(levels, list) or not levels:
        return None
    knee = _first(sweep, "knee", "knee_level") if isinstance(sweep, dict) else None
    if isinstance(knee, dict):
        knee = _first(knee, "level", "value")
    kind = str(sweep.get("kind") or "") if isinstance(sweep, dict) else ""
    load_key = "offered_rate" if kind == "rate" else "concurrency"
    measured = [level for level in levels if isinstance(level, dict)]
    keys = sorted({key for level in measured for key, value in level.items() if finite_number(value) is not None}
                  | {slo["key"] for slo in slos})
    points = []
    for level in measured:  # the charts draw a percentile on too few samples as the SLO judged it, flagged
        name = _first(level, "level", "value", "concurrency", "rate", "label")
        points.append({
            "label": str(name),
            "load": finite_number(_first(level, load_key, "achieved_rate")),
            "values": {key: finite_number(level.get(key)) for key in keys},
            "few": [key for key in keys if shortfall(key, level)],
            "knee": bool(level.get("knee")) or (knee is not None and str(knee) == str(name)),
        })
    points = [p for p in points if p["load"] is not None]
    if not points:
        return None
    gated = {slo["key"]: slo for slo in slos}
    table = [{"level": str(level.get("level")),
              "cells": [{"text": "-" if shortfall(key, level) else format_value(key, level.get(key)),  # as the terminal
                         "miss": key in gated and _missed(gated[key], finite_number(level.get(key)))}
                        for key, _ in SWEEP_COLUMNS[1:]],
              "meets": level.get("meets_slos"), "misses": [str(m) for m in level.get("slo_misses") or []],
              "knee": knee is not None and str(knee) == str(level.get("level"))}
             for level in measured]
    return {"levels": points, "table": table, "slos": list(slos), "kind": kind,
            "load_label": "offered request rate, req/s" if kind == "rate" else "concurrency",
            "columns": [title for _, title in SWEEP_COLUMNS], "knee": None if knee is None else str(knee)}


def hardware_columns(hardware: Mapping[str, Any]) -> dict[str, list[Any]] | None:
    """The monitor's timeline (per-device lists inside each point) as one column per series, on the client's time
    axis when the section says when its first sample came (``start_s``, from the first request)."""
    timeseries = hardware.get("timeseries")
    if not isinstance(timeseries, list) or not timeseries:
        return None
    shift = finite_number(hardware.get("start_s")) or 0.0
    columns: dict[str, list[Any]] = {"t": [], "CPU %": [], "memory %": []}
    devices = max(len(p.get("gpu_util_pct") or []) for p in timeseries)
    series = (("gpu_util_pct", "util %"), ("gpu_power_w", "power W"), ("gpu_memory_used_gb", "memory GB"))
    names = [(key, f"GPU{d} {unit}", d) for d in range(devices) for key, unit in series]
    for _, name, _ in names:
        columns[name] = []
    for point in timeseries:
        t = finite_number(point.get("t"))
        columns["t"].append(None if t is None else round(t + shift, 3))
        columns["CPU %"].append(finite_number(point.get("cpu_pct")))
        columns["memory %"].append(finite_number(point.get("memory_pct")))
        for key, name, device in names:
            values = point.get(key) or []
            columns[name].append(finite_number(values[device]) if device < len(values) else None)
    return columns


def server_columns(server: Mapping[str, Any]) -> dict[str, list[Any]] | None:
    """The server's timeline on the client's time axis (its ``start_s``: the first scrape after the first request),
    each series named as the server catalog names it ("KV cache usage, %", not ``kv_cache_usage_pct``)."""
    columns = batch_timeline(server)
    if columns is None or "t" not in columns:
        return None
    shift = finite_number(server.get("start_s")) or 0.0
    return {"t": [None if t is None else round(t + shift, 3) for t in columns.pop("t")],
            **{timeline_title(key): values for key, values in columns.items()}}


def server_figures(server: dict[str, Any]) -> list[tuple[str, str]]:
    """The server section's run figures (means, peaks, rates, quantiles) as name/value pairs for a table."""
    return [(str(key), format_value(str(key), value)) for key, value in server.items()
            if key != "timeline" and finite_number(value) is not None]


def hardware_note(hardware: dict[str, Any]) -> str:
    """One line of run-level hardware figures under the hardware chart."""
    parts = [f"{label} {format_value('x', hardware.get(key))} %" for key, label in (
        ("cpu_mean_pct", "CPU mean"), ("cpu_peak_pct", "CPU peak"), ("memory_peak_pct", "memory peak"))]
    gpus = ", ".join(str(g) for g in hardware.get("gpu_devices") or []) or str(
        hardware.get("gpu_unavailable_reason") or "none")
    energy = finite_number(hardware.get("gpu_energy_j"))
    return " · ".join(parts + [f"GPUs: {gpus}"] + ([f"GPU energy {energy:.0f} J"] if energy is not None else []))


def pareto(aggregate: dict[str, Any]) -> dict[str, float] | None:
    """The run as a point of the throughput / interactivity trade-off: each user's tokens/s (1000 / TPOT p50)
    against all users' output tokens/s."""
    tpot, total = finite_number(aggregate.get("p50_tpot_ms")), finite_number(aggregate.get("output_throughput"))
    return None if not tpot or total is None else {"x": round(1000.0 / tpot, 3), "y": total}


def level_starts(rows: list[Row]) -> list[list[Any]]:
    """A sweep's levels on the timelines: each level's name and its first request's send time."""
    starts: dict[str, float] = {}
    for row in rows:
        start = finite_number(row.get("start_s"))
        if row.get("level") and start is not None:
            starts[str(row["level"])] = min(start, starts.get(str(row["level"]), start))
    return sorted(([name, round(t, 4)] for name, t in starts.items()), key=lambda item: item[1])


def last_answer(rows: list[Row]) -> float | None:
    """When the last answer came, in s from the first request: where the load timeline's last bucket ends."""
    ends = [start + seconds for row in rows
            if (start := finite_number(row.get("start_s"))) is not None
            and (seconds := finite_number(row.get("execution_time"))) is not None]
    return max(ends, default=None)


def warmup(batch: Batch) -> list[Any] | None:
    """When the warm-up ran (``[from, to, requests]``, s from the first measured request), for the timelines."""
    section = (batch.get("load") or {}).get("warmup")
    if not isinstance(section, dict) or (start := finite_number(section.get("start_s"))) is None:
        return None
    end = finite_number(section.get("end_s"))
    return [start, 0.0 if end is None else end, section.get("requests") or 0]
