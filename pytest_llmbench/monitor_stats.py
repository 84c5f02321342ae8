"""The monitor's arithmetic: figures for a span of samples, running run totals and a bounded timeline.

Pure functions and small classes on sample dicts (see `PerformanceMonitor`); nothing here touches
hardware or threads, so the figures can be checked on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Sample = dict[str, Any]


@dataclass
class RunningStat:
    """A running mean and peak, so run-level figures cost O(1) memory."""

    count: int = 0
    total: float = 0.0
    peak: float | None = None

    def add(self, value: float | None) -> None:
        if value is None:
            return
        self.count += 1
        self.total += value
        self.peak = value if self.peak is None else max(self.peak, value)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class DeviceTotals:
    utilization: RunningStat = field(default_factory=RunningStat)
    memory: RunningStat = field(default_factory=RunningStat)
    temperature: RunningStat = field(default_factory=RunningStat)
    power: RunningStat = field(default_factory=RunningStat)
    counter_j: float | None = None  # summed energy counter deltas (a counter reset adds nothing)
    last_counter_j: float | None = None
    integrated_j: float | None = None  # power x time, for cards without an energy counter

    def add(self, device: dict[str, Any], dt: float) -> None:
        self.utilization.add(device["utilization_pct"])
        self.memory.add(device["memory_used_gb"])
        self.temperature.add(device["temperature_c"])
        self.power.add(device["power_w"])
        if device["energy_j"] is not None:
            if self.last_counter_j is not None:
                self.counter_j = (self.counter_j or 0.0) + max(device["energy_j"] - self.last_counter_j, 0.0)
            self.last_counter_j = device["energy_j"]
        if device["power_w"] is not None:
            self.integrated_j = (self.integrated_j or 0.0) + device["power_w"] * dt

    @property
    def energy_j(self) -> float | None:
        return self.counter_j if self.counter_j is not None else self.integrated_j


class Timeline:
    """At most `max_points` evenly spaced points over the whole run: when full, keep every other one."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max(2, max_points)
        self.points: list[dict[str, Any]] = []
        self._stride = 1
        self._seen = 0

    def add(self, point: dict[str, Any]) -> None:
        if self._seen % self._stride == 0:
            self.points.append(point)
            if len(self.points) > self.max_points:
                self.points = self.points[::2]
                self._stride *= 2
        self._seen += 1


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _peak(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _gpu_sum(sample: Sample, key: str) -> float | None:
    """Across devices: memory and power add up (the total held or drawn)."""
    present = [d[key] for d in sample["gpu"] if d[key] is not None]
    return sum(present) if present else None


def _device_values(samples: list[Sample], key: str) -> list[float | None]:
    return [d[key] for s in samples for d in s["gpu"]]


def _window_energy(bracket: list[Sample], used: list[Sample], duration: float) -> float | None:
    """Energy counter delta over the samples around the window, scaled to its length; else power x time."""
    first, last = bracket[0], bracket[-1]
    span = last["t"] - first["t"]
    total: float | None = None
    for index, (start, end) in enumerate(zip(first["gpu"], last["gpu"])):
        delta = None if start["energy_j"] is None or end["energy_j"] is None else end["energy_j"] - start["energy_j"]
        if delta is not None and delta >= 0 and span > 0:  # a counter reset falls back to power x time
            joules = delta * duration / span
        else:
            power = _mean(s["gpu"][index]["power_w"] for s in used)
            joules = None if power is None else power * duration
        if joules is not None:
            total = (total or 0.0) + joules
    return total


def summarize_window(inside: list[Sample], bracket: list[Sample], duration: float) -> dict[str, Any]:
    """Figures for one span. `bracket` is `inside` plus the nearby samples just before and after it."""
    used = inside or bracket
    return {
        "gpu_util_mean_pct": _mean(_device_values(used, "utilization_pct")),
        "gpu_util_peak_pct": _peak(_device_values(used, "utilization_pct")),
        "gpu_memory_peak_gb": _peak(_gpu_sum(s, "memory_used_gb") for s in used),
        "gpu_power_mean_w": _mean(_gpu_sum(s, "power_w") for s in used),
        "gpu_energy_j": _window_energy(bracket, used, duration) if bracket else None,
        "cpu_mean_pct": _mean(s["cpu_percent"] for s in used),
        "cpu_peak_pct": _peak(s["cpu_percent"] for s in used),
        "process_cpu_mean_pct": _mean(s["process_cpu_pct"] for s in used),  # the sampling process (100 = a core)
        "memory_peak_gb": _peak(s["memory_used_gb"] for s in used),
        "memory_peak_pct": _peak(s["memory_percent"] for s in used),
        "disk_read_mb_s": _mean(s["disk_read_mb_s"] for s in used),
        "disk_write_mb_s": _mean(s["disk_write_mb_s"] for s in used),
        "net_sent_mb_s": _mean(s["net_sent_mb_s"] for s in used),
        "net_recv_mb_s": _mean(s["net_recv_mb_s"] for s in used),
        "samples": len(inside),
        "nearest": not inside and bool(bracket),  # figures come from the samples next to a short window
        "duration_s": duration,
    }


def joules_per_token(window: dict[str, Any], tokens: int | None) -> float | None:
    energy = window.get("gpu_energy_j")
    if energy is None or not tokens:
        return None
    return energy / tokens


def device_summary(index: int, name: str, totals: DeviceTotals) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "util_mean_pct": totals.utilization.mean,
        "util_peak_pct": totals.utilization.peak,
        "memory_mean_gb": totals.memory.mean,
        "memory_peak_gb": totals.memory.peak,
        "temperature_mean_c": totals.temperature.mean,
        "temperature_peak_c": totals.temperature.peak,
        "power_mean_w": totals.power.mean,
        "power_peak_w": totals.power.peak,
        "energy_j": totals.energy_j,
    }
