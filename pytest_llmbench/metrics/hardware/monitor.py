"""Hardware figures for a benchmark run: one background sampler, per-test windows and a run summary.

Only one process should sample (the xdist controller): NVML and psutil figures are machine-wide.
Times are `time.monotonic()` seconds; on Linux (CLOCK_MONOTONIC), Windows and macOS that clock is
system-wide, so a worker's test start/end times can be handed to the controller's `window()`.
Memory stays bounded in a long run: a capped deque of recent samples, running aggregates for the
whole run and a timeline that halves its resolution whenever it fills up. Rates come from counter
readings that any thread may take (see `Counters`), so `measure()` reads on the caller's thread too.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..periodic import Periodic
from .nvml import GIB, GpuProbe
from .window import (
    Counters,
    DeviceTotals,
    RunningStat,
    Sample,
    Timeline,
    device_summary,
    rates,
    summarize_block,
    summarize_window,
)

if TYPE_CHECKING:
    import psutil

DEFAULT_INTERVAL = 0.5  # seconds between samples
DEFAULT_GPU_TEMP_C = 85.0  # the GPU-temperature alert
DEFAULT_MEMORY_PCT = 95.0  # the system-memory alert
DEFAULT_ERROR_RATE = 0.5  # the API-error-rate alert, a share of the last results
MAX_SAMPLES = 10_000  # 83 min at 0.5 s (~2 KB each); windows are asked for right after each test ends
_PSUTIL_ERRORS = (OSError, RuntimeError, NotImplementedError, AttributeError)

Collector = Callable[[Sample], None]


class _Messages:
    """Messages reported once each, with a cursor so a caller can fetch only the new ones."""

    def __init__(self) -> None:
        self.all: list[str] = []
        self._keys: set[object] = set()
        self._popped = 0

    def add(self, message: str, key: object = None) -> None:
        key = message if key is None else key
        if key not in self._keys:
            self._keys.add(key)
            self.all.append(message)

    def pop_new(self) -> list[str]:
        new = self.all[self._popped :]
        self._popped = len(self.all)
        return new


def _optional(read: Callable[[], Any]) -> Any:
    """psutil readings that some platforms or containers lack: None instead of an error."""
    try:
        return read()
    except _PSUTIL_ERRORS:
        return None


def _counters() -> Counters:
    import psutil  # here, in _system_sample and in the monitor: it takes 5 ms to load, and most runs never monitor

    return Counters(
        t=time.monotonic(),
        cpu=_optional(psutil.cpu_times),
        per_core=_optional(lambda: psutil.cpu_times(percpu=True)),
        process_cpu_s=time.process_time(),
        disk=_optional(psutil.disk_io_counters),
        net=_optional(psutil.net_io_counters),
    )


def _system_sample(process: psutil.Process, before: Counters | None, now: Counters) -> Sample:
    """The system part of a sample; it keeps no state, so the sampler and measure() can share it."""
    import psutil
    freq = _optional(psutil.cpu_freq)
    memory = psutil.virtual_memory()
    process_memory = _optional(process.memory_info)
    return {
        "t": now.t,
        "wall_time": time.time(),
        "gpu": [],
        **rates(before, now),
        "cpu_freq_mhz": freq.current if freq else None,
        "memory_used_gb": memory.used / GIB,
        "memory_available_gb": memory.available / GIB,
        "memory_pct": memory.percent,
        "process_rss_gb": process_memory.rss / GIB if process_memory else None,
    }


@dataclass
class Measurement:
    """What `PerformanceMonitor.measure()` yields; `metrics` is filled when the block exits.

    `metrics["samples"]` counts the block's two own readings and the sampler's samples in between.
    """

    start_t: float
    end_t: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class ErrorRateAlert:
    """Says once that the API error rate over the last `window` results reached `threshold`."""

    def __init__(self, window: int = 20, threshold: float = DEFAULT_ERROR_RATE) -> None:
        self.threshold = threshold
        self._recent: deque[bool] = deque(maxlen=window)
        self._fired = False

    def add(self, success: bool) -> str | None:
        self._recent.append(success)
        if self._fired or len(self._recent) < (self._recent.maxlen or 0):
            return None
        rate = self._recent.count(False) / len(self._recent)
        if rate < self.threshold:
            return None
        self._fired = True
        return (
            f"API error rate {rate:.0%} over the last {len(self._recent)} requests"
            f" reached the {self.threshold:.0%} alert threshold"
        )


class PerformanceMonitor:
    """Samples GPU, CPU, memory, disk and network between start() and stop().

    The sampler is a daemon thread, so a hung driver call can never keep the test process alive.
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        *,
        gpu_temp_c: float = DEFAULT_GPU_TEMP_C,
        memory_pct: float = DEFAULT_MEMORY_PCT,
        max_samples: int = MAX_SAMPLES,
        max_points: int = 2000,
        probe: GpuProbe | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.gpu_temp_c = gpu_temp_c
        self.memory_pct = memory_pct
        self.extra_collectors: list[Collector] = []
        self.device_names: list[str] = []
        self._probe = probe if probe is not None else GpuProbe()
        self._probe_problems_seen = 0
        import psutil

        self._process = psutil.Process()
        self._near = max(3 * interval, 1.0)  # how far a nearby sample may lie from a window with none inside
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque(maxlen=max_samples)
        self._timeline = Timeline(max_points)
        self._devices: list[DeviceTotals] = []
        self._cpu = RunningStat()
        self._memory_pct = RunningStat()
        self._memory_gb = RunningStat()
        self._count = 0
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._alerts = _Messages()
        self._problems = _Messages()
        self._sampler = Periodic("llmbench-monitor", self.interval, self._tick)
        self._last: Counters | None = None
        self._started = False

    @property
    def gpu_unavailable_reason(self) -> str | None:
        """Why there are no GPU figures (no library, no driver, no device); the caller warns once."""
        return self._probe.unavailable_reason

    @property
    def running(self) -> bool:
        return self._sampler.running

    def start(self) -> None:
        """Open NVML and begin sampling; a monitor covers one run, so a second start() is refused."""
        if self._started:
            raise RuntimeError("this PerformanceMonitor has already run; make a new one")
        self._started = True
        self.device_names = self._probe.open()
        if self._probe.unavailable_reason:
            self._problem(self._probe.unavailable_reason)
        self._devices = [DeviceTotals() for _ in self.device_names]
        self._last = _counters()
        self._sampler.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sampling (one last sample covers the partial interval) and release NVML."""
        if self._sampler.stop(timeout):  # a hung NVML call keeps its handle; the daemon thread dies at exit
            self._probe.close()

    def _tick(self, final: bool) -> None:
        now, last = _counters(), self._last
        if last is None or now.t - last.t >= 0.01:  # skip a zero-length final interval (its cpu figure is noise)
            sample = self._read(last, now)
            if sample is not None:
                self._collect(sample)
                self._record(sample)
            self._last = now

    def _read(self, before: Counters | None, now: Counters) -> Sample | None:
        """A sample of the whole machine; None (and a problem noted) when a reading fails."""
        try:
            sample = _system_sample(self._process, before, now)
            sample["gpu"] = self._probe.sample()
        except Exception as exc:  # noqa: BLE001 - never let one bad reading end the run's monitoring or a measured block
            self._problem(f"a hardware sample failed: {exc!r}", key=type(exc))
            return None
        return sample

    def _collect(self, sample: Sample) -> None:
        for collector in list(self.extra_collectors):
            try:
                collector(sample)
            except Exception as exc:  # noqa: BLE001 - a user's collector must not end the sampling
                name = getattr(collector, "__qualname__", repr(collector))
                self._problem(f"metrics collector {name} failed: {exc!r}", key=collector)

    def _problem(self, message: str, key: object = None) -> None:
        with self._lock:
            self._problems.add(message, key)

    def _record(self, sample: Sample) -> None:
        t = sample["t"]
        with self._lock:
            dt = 0.0 if self._last_t is None else t - self._last_t
            if self._first_t is None:
                self._first_t = t
            self._last_t = t
            self._count += 1
            self._samples.append(sample)
            self._cpu.add(sample["cpu_pct"])
            self._memory_pct.add(sample["memory_pct"])
            self._memory_gb.add(sample["memory_used_gb"])
            for totals, device in zip(self._devices, sample["gpu"]):
                totals.add(device, dt)
            self._timeline.add(
                {
                    "t": t - self._first_t,
                    "cpu_pct": sample["cpu_pct"],
                    "memory_pct": sample["memory_pct"],
                    "gpu_util_pct": [d["gpu_util_pct"] for d in sample["gpu"]],
                    "gpu_power_w": [d["gpu_power_w"] for d in sample["gpu"]],
                    "gpu_memory_used_gb": [d["gpu_memory_used_gb"] for d in sample["gpu"]],
                }
            )
            self._check_health(sample)
            for problem in self._probe.problems[self._probe_problems_seen :]:
                self._problems.add(problem)
            self._probe_problems_seen = len(self._probe.problems)

    def _check_health(self, sample: Sample) -> None:
        for device in sample["gpu"]:
            temperature = device["gpu_temperature_c"]
            if temperature is not None and temperature >= self.gpu_temp_c:
                self._alerts.add(
                    f"GPU {device['index']} ({device['name']}) reached {temperature:.0f} °C"
                    f" (alert threshold {self.gpu_temp_c:.0f} °C)",
                    key=("gpu_temp_c", device["index"]),
                )
        if sample["memory_pct"] >= self.memory_pct:
            self._alerts.add(
                f"system memory reached {sample['memory_pct']:.0f} % used"
                f" (alert threshold {self.memory_pct:.0f} %)",
                key="memory_pct",
            )

    def samples(self) -> list[Sample]:
        """The retained samples, oldest first: a copy, so a caller can iterate while sampling goes on."""
        with self._lock:
            return list(self._samples)

    def alerts(self) -> list[str]:
        with self._lock:
            return list(self._alerts.all)

    def pop_new_alerts(self) -> list[str]:
        with self._lock:
            return self._alerts.pop_new()

    @property
    def problems(self) -> list[str]:
        """Troubles of the monitoring itself (no GPU, failing collectors, lost GPUs), each once."""
        with self._lock:
            return list(self._problems.all)

    def pop_new_problems(self) -> list[str]:
        with self._lock:
            return self._problems.pop_new()

    def window(self, start_t: float, end_t: float) -> dict[str, Any]:
        """Figures for a span of monotonic time (from this or another process on this machine)."""
        if end_t < start_t:
            raise ValueError(f"window ends ({end_t}) before it starts ({start_t})")
        inside, before, after = self._span(start_t, end_t)
        bracket = ([before] if before else []) + inside + ([after] if after else [])
        return summarize_window(inside, bracket, end_t - start_t)

    def _span(self, start_t: float, end_t: float) -> tuple[list[Sample], Sample | None, Sample | None]:
        """The samples inside [start_t, end_t], and the nearby ones just before and after it."""
        with self._lock:
            samples = self._samples
            lo = bisect.bisect_left(samples, start_t, key=_time)
            hi = bisect.bisect_right(samples, end_t, key=_time)
            inside = [samples[i] for i in range(lo, hi)]
            before = samples[lo - 1] if lo > 0 and start_t - samples[lo - 1]["t"] <= self._near else None
            after = samples[hi] if hi < len(samples) and samples[hi]["t"] - end_t <= self._near else None
        return inside, before, after

    @contextmanager
    def measure(self) -> Iterator[Measurement]:
        """`with monitor.measure() as m: ...` then read `m.metrics`.

        The block is read on the caller's thread as it starts and as it ends, so a block shorter than
        the interval, or one right after start() (or without start()), still has figures; CPU, disk and
        network are rates over exactly the block (system CPU is None for a block too short for the
        kernel's CPU tick, a few ms). These two readings stay out of the run's samples, alerts and
        collectors. Should a reading fail, the block falls back to `window()`.
        """
        entry_counters = _counters()
        entry = self._read(None, entry_counters)
        measurement = Measurement(start_t=entry_counters.t)
        try:
            yield measurement
        finally:
            exit_counters = _counters()
            exit_ = self._read(entry_counters, exit_counters)
            measurement.end_t = exit_counters.t
            if entry is None or exit_ is None:
                measurement.metrics.update(self.window(measurement.start_t, measurement.end_t))
            else:
                inside, _, _ = self._span(measurement.start_t, measurement.end_t)
                measurement.metrics.update(summarize_block(entry, inside, exit_))

    def summary(self, first_sent: float | None = None) -> dict[str, Any]:
        """Run-level figures and a plot-ready timeline of at most `max_points` points; ``first_sent`` (monotonic), the
        run's first request, from which ``start_s`` counts the first sample (the timeline's ``t`` counts from it)."""
        with self._lock:
            energies = [d.energy_j for d in self._devices if d.energy_j is not None]
            first = self._first_t
            return {
                "interval_s": self.interval,
                "samples": self._count,
                "duration_s": None if self._first_t is None or self._last_t is None else self._last_t - self._first_t,
                "start_s": None if first is None or first_sent is None else round(first - first_sent, 3),
                "gpu_devices": list(self.device_names),
                "gpu_unavailable_reason": self.gpu_unavailable_reason,
                "gpus": [device_summary(i, n, d) for i, (n, d) in enumerate(zip(self.device_names, self._devices))],
                "gpu_energy_j": sum(energies) if energies else None,
                "cpu_mean_pct": self._cpu.mean,
                "cpu_peak_pct": self._cpu.peak,
                "memory_mean_pct": self._memory_pct.mean,
                "memory_peak_pct": self._memory_pct.peak,
                "memory_mean_gb": self._memory_gb.mean,
                "memory_peak_gb": self._memory_gb.peak,
                "alerts": list(self._alerts.all),
                "problems": list(self._problems.all),
                "timeseries": list(self._timeline.points),
            }


def _time(sample: Sample) -> float:
    return float(sample["t"])
