"""Figures from a run of scrapes: gauges as mean and peak, counters as increases and rates (restarts handled),
histograms as the observations made in between, with quantile estimates.

Pure functions on ``Reading`` lists, oldest first; nothing here reads the network or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .catalog import KINDS, SERIES, Reading
from .parse import Histogram

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def increase(values: Iterable[float]) -> float | None:
    """How far a counter went up; a drop means the server restarted and counts from zero (PromQL's increase)."""
    total, last = None, None
    for value in values:
        if last is not None:
            total = (total or 0.0) + (value - last if value >= last else value)
        last = value
    return total


def observed(histograms: Iterable[Histogram]) -> Histogram | None:
    """The observations made between the first and the last snapshot, over restarts."""
    total, last = None, None
    for hist in histograms:
        if last is not None:
            total = hist.minus(last).plus(total)
        last = hist
    return total


def kind_of(name: str) -> str:
    """Raw series named with ``_total`` are counters; other raw names are read as gauges."""
    return KINDS.get(name) or ("counter" if name.endswith("_total") else "gauge")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def gauge_figures(name: str, values: list[float], unit: str = "") -> dict[str, float | None]:
    return {f"{name}_mean{unit}": _mean(values), f"{name}_peak{unit}": max(values) if values else None}


def counter_figures(name: str, points: list[tuple[float, float]]) -> dict[str, float | None]:
    """``points`` are (t, value); the rate is over the time between the first and the last."""
    delta = increase(value for _, value in points)
    span = points[-1][0] - points[0][0] if len(points) > 1 else 0.0
    return {name: delta, f"{name}_per_s": delta / span if delta is not None and span > 0 else None}


def histogram_figures(name: str, hist: Histogram | None) -> dict[str, float | None]:
    """Seconds become milliseconds, as the client's latency figures are."""
    figures: dict[str, float | None] = {f"{name}_count": hist.count if hist else None,
                                        f"{name}_mean_ms": _ms(hist.mean if hist else None)}
    for label, q in QUANTILES:
        figures[f"{name}_{label}_ms"] = _ms(hist.quantile(q) if hist else None)
    return figures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


_UNITS = {series.name: series.unit for series in SERIES}


def span_figures(gauges: list[Reading], bracket: list[Reading], raw: Iterable[str] = ()) -> dict[str, Any]:
    """Figures for one span: gauges from ``gauges`` (the readings inside it, or the nearest ones), counters and
    histograms over ``bracket`` (the readings just before and after it as well, so nothing is missed)."""
    figures: dict[str, Any] = {}
    for name in (*(series.name for series in SERIES), *raw):
        kind = kind_of(name)
        if any(name in r.histograms for r in bracket):
            hist = observed(r.histograms[name] for r in bracket if name in r.histograms)
            figures.update(histogram_figures(name, hist))
        elif kind == "counter":
            points = [(r.t, r.values[name]) for r in bracket if name in r.values]
            if points:
                figures.update(counter_figures(name, points))
        else:
            values = [r.values[name] for r in gauges if name in r.values]
            if values:
                figures.update(gauge_figures(name, values, _UNITS.get(name, "")))
    figures.update(gpu_figures(gauges, bracket))
    return with_hit_rate(figures)


def with_hit_rate(figures: dict[str, Any]) -> dict[str, Any]:
    """``prefix_cache_hit_rate``: the share of looked-up prompt tokens found in the prefix cache."""
    hits, queries = figures.pop("prefix_cache_hits", None), figures.pop("prefix_cache_queries", None)
    for key in ("prefix_cache_hits_per_s", "prefix_cache_queries_per_s"):
        figures.pop(key, None)
    if hits is not None and queries:
        figures["prefix_cache_hit_rate"] = hits / queries
    return figures


def _device_values(readings: list[Reading], key: str) -> list[float]:
    return [d[key] for r in readings for d in r.gpus.values() if d.get(key) is not None]


def _per_reading_sum(readings: list[Reading], key: str) -> list[float]:
    sums = []
    for r in readings:
        present = [d[key] for d in r.gpus.values() if d.get(key) is not None]
        if present:
            sums.append(sum(present))
    return sums


def gpu_figures(gauges: list[Reading], bracket: list[Reading]) -> dict[str, Any]:
    """The local monitor's window figures (metrics/hardware/window.py) for the exporter's GPUs."""
    if not any(r.gpus for r in bracket):
        return {}
    memory = _per_reading_sum(gauges, "gpu_memory_used_gb")
    return {
        "gpu_util_mean_pct": _mean(_device_values(gauges, "gpu_util_pct")),
        "gpu_util_peak_pct": max(_device_values(gauges, "gpu_util_pct"), default=None),
        "gpu_memory_peak_gb": max(memory, default=None),
        "gpu_power_mean_w": _mean(_per_reading_sum(gauges, "gpu_power_w")),
        "gpu_temperature_peak_c": max(_device_values(gauges, "gpu_temperature_c"), default=None),
    }


def gpu_watts(bracket: list[Reading]) -> float | None:
    """What the GPUs drew over the bracket, summed: each one's energy counter increase over the time between its
    own first and last reading, else its mean power."""
    total = None
    for gpu in {g for r in bracket for g in r.gpus}:
        devices = [r.gpus[gpu] for r in bracket if gpu in r.gpus]
        counter = [(d["t"], d["gpu_energy_counter_j"]) for d in devices if d.get("gpu_energy_counter_j") is not None]
        joules = increase(value for _, value in counter)
        span = counter[-1][0] - counter[0][0] if counter else 0.0
        watts = joules / span if joules is not None and span > 0 else \
            _mean([d["gpu_power_w"] for d in devices if d.get("gpu_power_w") is not None])
        if watts is not None:
            total = (total or 0.0) + watts
    return total


def joules_per_token(watts: float | None, duration: float, server_tokens_per_s: float | None,
                     completion_tokens: int | None) -> tuple[float | None, float | None]:
    """(joules over ``duration``, joules per token). Per token: the GPUs' draw over the rate the server made
    tokens at in the same readings when it counts them (that covers every request it served then), else the
    energy over the test's own completion tokens, as the local monitor reckons."""
    if watts is None:
        return None, None
    joules = watts * duration
    if server_tokens_per_s:
        return joules, watts / server_tokens_per_s
    return joules, joules / completion_tokens if completion_tokens else None
