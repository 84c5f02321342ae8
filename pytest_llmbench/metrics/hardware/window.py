"""The monitor's arithmetic: rates between counter readings, figures for a span of samples, running
run totals and a bounded timeline.

Pure functions and small classes on readings and sample dicts (see `PerformanceMonitor`); nothing
here touches hardware or threads, so the figures can be checked on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Sample = dict[str, Any]
MIB = 2**20

_IO_COUNTERS = {  # sample key: (Counters field, psutil counter)
    "disk_read_mb_s": ("disk", "read_bytes"),
    "disk_write_mb_s": ("disk", "write_bytes"),
    "net_sent_mb_s": ("net", "bytes_sent"),
    "net_recv_mb_s": ("net", "bytes_recv"),
}

# A measured block's own figures: rates over exactly its span, taken from the readings at its ends.
_BLOCK_RATES = {
    "cpu_mean_pct": "cpu_pct",
    "process_cpu_mean_pct": "process_cpu_pct",
    "disk_read_mb_s": "disk_read_mb_s",
    "disk_write_mb_s": "disk_write_mb_s",
    "net_sent_mb_s": "net_sent_mb_s",
    "net_recv_mb_s": "net_recv_mb_s",
}


@dataclass(frozen=True)
class Counters:
    """Cumulative counters read at one moment (psutil named tuples, or None where a platform lacks one).

    Rates come from the difference of two readings, not from psutil.cpu_percent, which keeps its last
    reading per thread: so the sampling thread and any caller's thread can each hold their own.
    """

    t: float
    cpu: Any
    per_core: Any
    process_cpu_s: float  # time.process_time(): every thread of this process, at nanosecond resolution
    disk: Any
    net: Any


def _busy_and_total(times: Any) -> tuple[float, float]:
    # Linux counts guest time inside user and nice as well, so it is taken out once (as psutil does).
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def busy_pct(before: Any, after: Any) -> float | None:
    """psutil.cpu_percent's arithmetic; None while the kernel's tick counters have not moved."""
    if before is None or after is None:
        return None
    busy_before, total_before = _busy_and_total(before)
    busy_after, total_after = _busy_and_total(after)
    if total_after <= total_before:
        return None
    return min(max((busy_after - busy_before) / (total_after - total_before) * 100.0, 0.0), 100.0)


def _rate(before: Any, now: Any, counter: str, dt: float) -> float | None:
    if now is None or before is None or dt <= 0:
        return None
    delta: float = max(getattr(now, counter) - getattr(before, counter), 0)
    return delta / MIB / dt


def rates(before: Counters | None, now: Counters) -> dict[str, Any]:
    """CPU (100 = all cores; the process figure: 100 = one core) and disk and network MiB/s between
    two readings; all None without an earlier reading."""
    if before is None:
        return dict.fromkeys(("cpu_pct", "cpu_per_core_pct", "process_cpu_pct", *_IO_COUNTERS))
    dt = now.t - before.t
    per_core = None
    if before.per_core is not None and now.per_core is not None:
        per_core = [busy_pct(a, b) for a, b in zip(before.per_core, now.per_core)]
    out: dict[str, Any] = {
        "cpu_pct": busy_pct(before.cpu, now.cpu),
        "cpu_per_core_pct": per_core,
        "process_cpu_pct": (now.process_cpu_s - before.process_cpu_s) / dt * 100.0 if dt > 0 else None,
    }
    for key, (device, counter) in _IO_COUNTERS.items():
        out[key] = _rate(getattr(before, device), getattr(now, device), counter, dt)
    return out


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
    util: RunningStat = field(default_factory=RunningStat)
    memory: RunningStat = field(default_factory=RunningStat)
    temperature: RunningStat = field(default_factory=RunningStat)
    power: RunningStat = field(default_factory=RunningStat)
    memory_total_gb: float | None = None  # the last size the card reported (a lost card keeps it)
    counter_j: float | None = None  # summed energy counter deltas (a counter reset adds nothing)
    last_counter_j: float | None = None
    integrated_j: float | None = None  # power x time, for cards without an energy counter

    def add(self, device: dict[str, Any], dt: float) -> None:
        self.util.add(device["gpu_util_pct"])
        self.memory.add(device["gpu_memory_used_gb"])
        self.temperature.add(device["gpu_temperature_c"])
        self.power.add(device["gpu_power_w"])
        if device["gpu_memory_total_gb"] is not None:
            self.memory_total_gb = device["gpu_memory_total_gb"]
        counter = device["gpu_energy_counter_j"]
        if counter is not None:
            if self.last_counter_j is not None:
                self.counter_j = (self.counter_j or 0.0) + max(counter - self.last_counter_j, 0.0)
            self.last_counter_j = counter
        if device["gpu_power_w"] is not None:
            self.integrated_j = (self.integrated_j or 0.0) + device["gpu_power_w"] * dt

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
        before, after = start["gpu_energy_counter_j"], end["gpu_energy_counter_j"]
        delta = None if before is None or after is None else after - before
        if delta is not None and delta >= 0 and span > 0:  # a counter reset falls back to power x time
            joules = delta * duration / span
        else:
            power = _mean(s["gpu"][index]["gpu_power_w"] for s in used)
            joules = None if power is None else power * duration
        if joules is not None:
            total = (total or 0.0) + joules
    return total


def summarize_window(inside: list[Sample], bracket: list[Sample], duration: float) -> dict[str, Any]:
    """Figures for one span. `bracket` is `inside` plus the nearby samples just before and after it."""
    used = inside or bracket
    return {
        "gpu_util_mean_pct": _mean(_device_values(used, "gpu_util_pct")),
        "gpu_util_peak_pct": _peak(_device_values(used, "gpu_util_pct")),
        "gpu_memory_peak_gb": _peak(_gpu_sum(s, "gpu_memory_used_gb") for s in used),
        "gpu_power_mean_w": _mean(_gpu_sum(s, "gpu_power_w") for s in used),
        "gpu_energy_j": _window_energy(bracket, used, duration) if bracket else None,
        "cpu_mean_pct": _mean(s["cpu_pct"] for s in used),
        "cpu_peak_pct": _peak(s["cpu_pct"] for s in used),
        "process_cpu_mean_pct": _mean(s["process_cpu_pct"] for s in used),  # this process (100 = one core)
        "memory_peak_gb": _peak(s["memory_used_gb"] for s in used),
        "memory_peak_pct": _peak(s["memory_pct"] for s in used),
        "disk_read_mb_s": _mean(s["disk_read_mb_s"] for s in used),
        "disk_write_mb_s": _mean(s["disk_write_mb_s"] for s in used),
        "net_sent_mb_s": _mean(s["net_sent_mb_s"] for s in used),
        "net_recv_mb_s": _mean(s["net_recv_mb_s"] for s in used),
        "samples": len(inside),
        "nearest": not inside and bool(bracket),  # figures come from the samples next to a short window
        "duration_s": duration,
    }


def summarize_block(entry: Sample, inside: list[Sample], exit_: Sample) -> dict[str, Any]:
    """Figures for a measured block from its own readings at entry and exit and the samples between.

    CPU, disk and network are the exit reading's rates over exactly the block, not a mean of sampler
    intervals that began before it; peaks, memory and GPU figures count every reading.
    """
    used = [entry, *inside, exit_]
    figures = summarize_window(used, used, exit_["t"] - entry["t"])
    figures.update({key: exit_[source] for key, source in _BLOCK_RATES.items()})
    figures["samples"] = len(used)
    return figures


def joules_per_token(window: dict[str, Any], tokens: int | None) -> float | None:
    energy = window.get("gpu_energy_j")
    if energy is None or not tokens:
        return None
    return float(energy) / tokens


def device_summary(index: int, name: str, totals: DeviceTotals) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "gpu_util_mean_pct": totals.util.mean,
        "gpu_util_peak_pct": totals.util.peak,
        "gpu_memory_mean_gb": totals.memory.mean,
        "gpu_memory_peak_gb": totals.memory.peak,
        "gpu_memory_total_gb": totals.memory_total_gb,
        "gpu_temperature_mean_c": totals.temperature.mean,
        "gpu_temperature_peak_c": totals.temperature.peak,
        "gpu_power_mean_w": totals.power.mean,
        "gpu_power_peak_w": totals.power.peak,
        "gpu_energy_j": totals.energy_j,
    }
