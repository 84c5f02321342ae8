"""The run's server readings: recent ones for per-test windows, running totals and a timeline for the run.

One scraper thread adds readings; the controller asks for windows as results arrive and for the summary at
the end. Times are ``time.monotonic()`` seconds, system-wide on Linux, Windows and macOS, so a window measured
by an xdist worker on this machine can be looked up here (as the hardware monitor does). Memory stays bounded:
a capped deque of recent readings, O(1) run totals, a timeline that halves its resolution when full.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import Any

from ..hardware.window import DeviceTotals, RunningStat, Timeline, device_summary
from .catalog import SERIES, Reading
from .figures import (
    gpu_watts,
    histogram_figures,
    increase,
    joules_per_token,
    kind_of,
    span_figures,
    with_hit_rate,
)
from .parse import Histogram

MAX_READINGS = 10_000  # 83 min at 0.5 s; a test's window is asked for as soon as its result arrives
TIMELINE_POINTS = 2000
_TIMELINE_GAUGES = ("requests_running", "requests_waiting", "kv_cache_usage")
_TIMELINE_RATES = ("generation_tokens", "prompt_tokens")


class ServerStore:
    def __init__(self, raw: tuple[str, ...] = (), max_readings: int = MAX_READINGS,
                 max_points: int = TIMELINE_POINTS, near: float = 1.5) -> None:
        self.raw = raw
        self.near = near  # how far a reading may lie from a window and still count as next to it
        self._lock = threading.Lock()
        self._readings: deque[Reading] = deque(maxlen=max_readings)
        self._timeline = Timeline(max_points)
        self._gauges: dict[str, RunningStat] = {}
        self._counters: dict[str, float] = {}  # increase since the first reading
        self._histograms: dict[str, Histogram] = {}  # observations since the first reading
        self._devices: dict[str, DeviceTotals] = {}
        self._device_names: dict[str, str] = {}
        self._first: Reading | None = None
        self._last: Reading | None = None
        self.count = 0
        self.dropped_values = 0  # implausible values the readings left out (Reading.dropped)

    @property
    def last_t(self) -> float | None:
        with self._lock:
            return None if self._last is None else self._last.t

    @property
    def first_t(self) -> float | None:
        """When the first reading was taken (monotonic): where the timeline's ``t`` counts from."""
        with self._lock:
            return None if self._first is None else self._first.t

    def add(self, reading: Reading) -> None:
        with self._lock:
            previous = self._last
            self._readings.append(reading)
            self.count += 1
            self.dropped_values += reading.dropped
            if self._first is None:
                self._first = reading
            self._last = reading
            self._accumulate(previous, reading)

    def _accumulate(self, previous: Reading | None, reading: Reading) -> None:
        dt = 0.0 if previous is None else reading.t - previous.t
        point: dict[str, Any] = {"t": round(reading.t - self._first.t, 3) if self._first else 0.0}
        for name, value in reading.values.items():
            if kind_of(name) == "counter":
                before = None if previous is None else previous.values.get(name)
                step = increase((before, value)) if before is not None else None
                if step is not None:
                    self._counters[name] = self._counters.get(name, 0.0) + step
                    if name in _TIMELINE_RATES and dt > 0:
                        point[f"{name}_per_s"] = step / dt
                self._counters.setdefault(name, 0.0)
            else:
                self._gauges.setdefault(name, RunningStat()).add(value)
                if name in _TIMELINE_GAUGES or name in self.raw:
                    point[name if name != "kv_cache_usage" else "kv_cache_usage_pct"] = value
        for name, hist in reading.histograms.items():
            before_hist = None if previous is None else previous.histograms.get(name)
            if before_hist is not None:
                self._histograms[name] = hist.minus(before_hist).plus(self._histograms.get(name))
        for gpu, device in reading.gpus.items():
            self._devices.setdefault(gpu, DeviceTotals()).add(device, dt)
            self._device_names[gpu] = device["name"]
        if reading.gpus:
            utils = [d["gpu_util_pct"] for d in reading.gpus.values() if d["gpu_util_pct"] is not None]
            powers = [d["gpu_power_w"] for d in reading.gpus.values() if d["gpu_power_w"] is not None]
            point["gpu_util_pct"] = sum(utils) / len(utils) if utils else None
            point["gpu_power_w"] = sum(powers) if powers else None
        self._timeline.add(point)

    def window(self, start_t: float, end_t: float, completion_tokens: int | None = None) -> dict[str, Any] | None:
        """The server's figures while one test ran; None when no reading lies inside or next to it."""
        with self._lock:
            readings = self._readings
            lo = bisect.bisect_left(readings, start_t, key=_time)
            hi = bisect.bisect_right(readings, end_t, key=_time)
            inside = [readings[i] for i in range(lo, hi)]
            before = readings[lo - 1] if lo > 0 and start_t - readings[lo - 1].t <= self.near else None
            after = readings[hi] if hi < len(readings) and readings[hi].t - end_t <= self.near else None
        bracket = ([before] if before else []) + inside + ([after] if after else [])
        if not bracket:
            return None
        figures = span_figures(inside or bracket, bracket, self.raw)
        duration = max(end_t - start_t, 0.0)
        span = bracket[-1].t - bracket[0].t
        if "gpu_util_mean_pct" in figures:
            figures["gpu_energy_j"], figures["joules_per_token"] = joules_per_token(
                gpu_watts(bracket), duration, figures.get("generation_tokens_per_s"), completion_tokens)
        figures.update({"samples": len(inside), "nearest": not inside, "span_s": span, "duration_s": duration})
        return figures

    def summary(self) -> dict[str, Any]:
        """Run figures: gauge means and peaks, counter totals and rates, histogram quantiles, GPUs, timeline."""
        with self._lock:
            duration = None if self._first is None or self._last is None else self._last.t - self._first.t
            figures: dict[str, Any] = {"readings": self.count, "dropped_values": self.dropped_values,
                                       "duration_s": duration}
            units = {series.name: series.unit for series in SERIES}
            for name, stat in self._gauges.items():
                unit = units.get(name, "")
                figures[f"{name}_mean{unit}"], figures[f"{name}_peak{unit}"] = stat.mean, stat.peak
            for name, total in self._counters.items():
                figures[name] = total
                figures[f"{name}_per_s"] = total / duration if duration else None
            for name, hist in self._histograms.items():
                figures.update(histogram_figures(name, hist))
            with_hit_rate(figures)
            gpus = [{**device_summary(i, self._device_names[gpu], totals), "gpu": gpu}
                    for i, (gpu, totals) in enumerate(sorted(self._devices.items()))]
            keys = dict.fromkeys(key for point in self._timeline.points for key in point)
            timeline = [{key: point.get(key) for key in keys} for point in self._timeline.points]
        if gpus:
            energies = [g["gpu_energy_j"] for g in gpus if g["gpu_energy_j"] is not None]
            figures["gpus"] = gpus
            figures["gpu_energy_j"] = sum(energies) if energies else None
            tokens = figures.get("generation_tokens")
            figures["joules_per_token"] = figures["gpu_energy_j"] / tokens if figures["gpu_energy_j"] and tokens \
                else None
        figures["timeline"] = timeline
        return figures


def _time(reading: Reading) -> float:
    return reading.t

