"""The real monitor on this machine (psutil, real NVML without a GPU): windows, rates, alerts, summary."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

import pytest
from fake_nvml import FakeNvml

from pytest_llmbench.metrics.hardware.monitor import ErrorRateAlert, PerformanceMonitor
from pytest_llmbench.metrics.hardware.nvml import GpuProbe
from pytest_llmbench.metrics.hardware.window import busy_pct, joules_per_token

GPU_FIELDS = ("gpu_util_mean_pct", "gpu_util_peak_pct", "gpu_memory_peak_gb", "gpu_power_mean_w", "gpu_energy_j")


@pytest.fixture
def monitor() -> Iterator[PerformanceMonitor]:
    monitor = PerformanceMonitor(interval=0.05)
    monitor.start()
    yield monitor
    monitor.stop()


def _timed(action: Any) -> tuple[float, float]:
    start = time.monotonic()
    action()
    return start, time.monotonic()


def _spin(seconds: float) -> None:
    def busy() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pass

    worker = threading.Thread(target=busy)
    worker.start()
    worker.join()


def _loopback_traffic(seconds: float, chunk: bytes) -> None:
    """Push bytes through a TCP connection on 127.0.0.1, which psutil counts with the other interfaces."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()

        def drain() -> None:
            while receiver.recv(1 << 20):
                pass

        reader = threading.Thread(target=drain)
        reader.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sender.sendall(chunk)
            time.sleep(0.02)
        sender.close()
        reader.join()
        receiver.close()


def test_no_gpu_gives_null_gpu_figures_and_the_reason_once() -> None:
    monitor = PerformanceMonitor(interval=0.05, probe=GpuProbe(nvml=FakeNvml(count=0)))  # a host without a GPU
    monitor.start()
    start, end = _timed(lambda: time.sleep(0.3))
    monitor.stop()
    window = monitor.window(start, end)
    assert all(window[name] is None for name in GPU_FIELDS)
    assert window["cpu_mean_pct"] is not None and window["samples"] >= 2
    summary = monitor.summary()
    assert summary["gpu_devices"] == [] and summary["gpus"] == [] and summary["gpu_energy_j"] is None
    reason = monitor.gpu_unavailable_reason
    assert reason and monitor.problems.count(reason) == 1
    assert monitor.pop_new_problems() == [reason] and monitor.pop_new_problems() == []


def test_busy_window_shows_more_cpu_than_an_idle_window() -> None:
    monitor = PerformanceMonitor(interval=0.1)
    monitor.start()
    idle = monitor.window(*_timed(lambda: time.sleep(1.0)))
    cpu_before = time.process_time()
    busy = monitor.window(*_timed(lambda: _spin(1.0)))
    spun = time.process_time() - cpu_before  # the CPU time the machine granted the spin, however busy it is
    monitor.stop()
    # At least half of that share of a core shows in the window (system-wide figures depend on the neighbours).
    assert busy["process_cpu_mean_pct"] > idle["process_cpu_mean_pct"] + 50 * spun
    assert busy["cpu_peak_pct"] >= busy["cpu_mean_pct"] > 0


def test_network_rate_is_a_delta_over_time(monitor: Any) -> None:
    idle = monitor.window(*_timed(lambda: time.sleep(0.5)))
    sending = monitor.window(*_timed(lambda: _loopback_traffic(0.8, b"x" * (2 << 20))))
    # About 100 MiB/s are pushed; a cumulative counter instead of a rate would read in the thousands too.
    assert 20 < sending["net_sent_mb_s"] < 5000
    assert sending["net_recv_mb_s"] > 20
    assert sending["net_sent_mb_s"] > idle["net_sent_mb_s"] * 5


def test_stop_ends_the_sampling_thread_promptly() -> None:
    monitor = PerformanceMonitor(interval=30.0)
    monitor.start()
    assert monitor.running
    time.sleep(0.1)
    start, end = _timed(monitor.stop)
    assert end - start < 5  # the sleep between samples wakes on stop instead of running out its 30 s
    assert not monitor.running
    assert not any(t.name == "llmbench-monitor" for t in threading.enumerate())
    assert len(monitor.samples()) == 1  # the final sample covers the part interval


def test_sampling_stops_with_stop(monitor: Any) -> None:
    time.sleep(0.2)
    monitor.stop()
    count = len(monitor.samples())
    time.sleep(0.2)
    assert count >= 2 and len(monitor.samples()) == count


def test_a_monitor_runs_once(monitor: Any) -> None:
    with pytest.raises(RuntimeError, match="already run"):
        monitor.start()


def test_extra_collectors_add_fields_and_a_failing_one_does_not_stop_sampling() -> None:
    def broken(sample: dict[str, Any]) -> None:
        raise KeyError("boom")

    monitor = PerformanceMonitor(interval=0.05)
    monitor.extra_collectors += [broken, lambda sample: sample.update(queue_depth=7)]
    monitor.start()
    time.sleep(0.4)
    monitor.stop()
    samples = monitor.samples()
    assert len(samples) >= 3
    assert all(s["queue_depth"] == 7 for s in samples)
    failures = [p for p in monitor.problems if "collector" in p]
    assert len(failures) == 1 and "broken" in failures[0] and "boom" in failures[0]


def test_memory_alert_fires_once_when_the_threshold_is_passed() -> None:
    monitor = PerformanceMonitor(interval=0.05, memory_pct=1)
    monitor.start()
    time.sleep(0.3)
    first = monitor.pop_new_alerts()
    time.sleep(0.2)
    monitor.stop()
    assert len(first) == 1 and "system memory reached" in first[0]
    assert monitor.pop_new_alerts() == []
    assert monitor.alerts() == first and monitor.summary()["alerts"] == first


def test_no_alert_below_the_thresholds(monitor: Any) -> None:
    time.sleep(0.2)
    assert monitor.alerts() == []


def test_error_rate_alert_fires_once_when_the_rate_reaches_the_threshold() -> None:
    alert = ErrorRateAlert(window=4, threshold=0.5)
    assert [alert.add(ok) for ok in (False, False, False)] == [None, None, None]  # window not yet full
    message = alert.add(True)
    assert message and "75%" in message and "last 4 requests" in message
    assert [alert.add(False) for _ in range(5)] == [None] * 5


def test_error_rate_alert_stays_quiet_below_the_threshold() -> None:
    alert = ErrorRateAlert(window=4, threshold=0.5)
    assert all(alert.add(ok) is None for ok in [True, False, True, True] * 5)


def test_summary_timeseries_stays_within_max_points() -> None:
    monitor = PerformanceMonitor(interval=0.01, max_points=8)
    monitor.start()
    time.sleep(0.6)
    monitor.stop()
    summary = monitor.summary()
    points = summary["timeseries"]
    assert summary["samples"] > 16
    assert 4 <= len(points) <= 8
    offsets = [p["t"] for p in points]
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    # spread over the whole run, not its first moments: the last point kept comes from the later half of the
    # samples (judged by the samples' own times, which a busy machine spaces unevenly)
    samples = monitor.samples()
    taken = [sample["t"] - samples[0]["t"] for sample in samples]
    assert offsets[-1] >= taken[len(taken) // 2 - 1]
    assert set(points[0]) == {"t", "cpu_pct", "memory_pct", "gpu_util_pct", "gpu_power_w", "gpu_memory_used_gb"}


def test_run_summary_has_cpu_and_memory_figures(monitor: Any) -> None:
    time.sleep(0.3)
    summary = monitor.summary()
    assert summary["cpu_peak_pct"] >= summary["cpu_mean_pct"] >= 0
    assert 0 < summary["memory_mean_pct"] <= summary["memory_peak_pct"] <= 100
    assert summary["memory_peak_gb"] > 0 and summary["duration_s"] > 0


def test_measure_fills_metrics_when_the_block_exits(monitor: Any) -> None:
    with monitor.measure() as measured:
        time.sleep(0.3)
        assert measured.metrics == {}
    assert measured.metrics["samples"] >= 2
    assert measured.metrics["duration_s"] == pytest.approx(0.3, abs=0.25)
    assert measured.metrics["cpu_mean_pct"] is not None and measured.metrics["memory_peak_pct"] > 0


def test_a_block_right_after_start_has_figures_though_no_sample_was_taken() -> None:
    monitor = PerformanceMonitor(interval=30.0)
    monitor.start()
    with monitor.measure() as window:
        pass
    assert monitor.samples() == []  # the block's own readings are not the run's samples
    monitor.stop()
    metrics = window.metrics
    assert 0 < metrics["memory_peak_pct"] <= 100 and metrics["memory_peak_gb"] > 0
    assert metrics["process_cpu_mean_pct"] is not None and metrics["net_sent_mb_s"] is not None
    assert metrics["samples"] == 2 and metrics["nearest"] is False


def test_a_block_shorter_than_the_interval_reports_its_own_cpu() -> None:
    monitor = PerformanceMonitor(interval=30.0)
    monitor.start()
    cpu_before = time.process_time()
    with monitor.measure() as busy:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass
    spun = time.process_time() - cpu_before  # the CPU time the machine granted us, however busy it is
    with monitor.measure() as idle:
        time.sleep(0.3)
    monitor.stop()
    # At least half the share of a core the spin got (the rest is the block's own edges and rounding).
    assert busy.metrics["process_cpu_mean_pct"] > idle.metrics["process_cpu_mean_pct"] + 50 * spun / 0.3
    assert busy.metrics["cpu_peak_pct"] >= busy.metrics["cpu_mean_pct"] > 0
    assert busy.metrics["duration_s"] == pytest.approx(0.3, abs=0.2)


def test_measure_needs_no_running_sampler() -> None:
    monitor = PerformanceMonitor(interval=0.05)
    with monitor.measure() as window:
        time.sleep(0.02)
    assert window.metrics["memory_peak_pct"] > 0 and window.metrics["gpu_util_mean_pct"] is None


def test_blocks_measured_on_many_threads_while_sampling_all_get_figures() -> None:
    monitor = PerformanceMonitor(interval=0.01)
    monitor.start()
    measured: list[dict[str, Any]] = []
    errors: list[Exception] = []

    def measure_often() -> None:
        try:
            for _ in range(15):
                with monitor.measure() as window:
                    time.sleep(0.003)
                measured.append(window.metrics)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=measure_often) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monitor.stop()
    assert errors == [] and len(measured) == 60
    assert all(m["memory_peak_pct"] > 0 and m["process_cpu_mean_pct"] is not None for m in measured)
    assert not [p for p in monitor.problems if "failed" in p]
    times = [s["t"] for s in monitor.samples()]
    assert len(times) >= 3 and times == sorted(times)


CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait guest guest_nice")


def test_busy_share_counts_guest_time_once_and_iowait_as_idle() -> None:
    before = CpuTimes(user=10, nice=0, system=5, idle=80, iowait=5, guest=2, guest_nice=0)
    after = CpuTimes(user=30, nice=0, system=10, idle=100, iowait=10, guest=12, guest_nice=0)
    # total 100 -> 150 (guest is inside user), busy 15 -> 40: 25 of 50
    assert busy_pct(before, after) == pytest.approx(50.0)
    assert busy_pct(after, after) is None  # no tick has passed: unknown, not 0 %
    assert busy_pct(None, after) is None


def test_short_window_between_samples_uses_the_nearest_sample() -> None:
    monitor = PerformanceMonitor(interval=0.3)
    monitor.start()
    time.sleep(0.4)
    monitor.stop()
    before, after = monitor.samples()[:2]
    window = monitor.window(before["t"] + 0.001, before["t"] + 0.002)
    assert window["samples"] == 0 and window["nearest"] is True
    assert window["cpu_mean_pct"] == pytest.approx((before["cpu_pct"] + after["cpu_pct"]) / 2)


def test_window_long_before_the_samples_has_no_figures(monitor: Any) -> None:
    time.sleep(0.1)
    first = monitor.samples()[0]["t"]
    window = monitor.window(first - 100, first - 99)
    assert window["samples"] == 0 and window["nearest"] is False and window["cpu_mean_pct"] is None


def test_window_rejects_an_end_before_its_start(monitor: Any) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        monitor.window(10.0, 5.0)


def test_window_takes_monotonic_times_from_another_process(monitor: Any) -> None:
    """xdist workers stamp test times in their own process; CLOCK_MONOTONIC is system-wide."""
    before = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", "import time; t = time.monotonic(); time.sleep(0.3); print(t, time.monotonic())"],
        capture_output=True, text=True, check=True,
    )
    after = time.monotonic()
    start, end = map(float, child.stdout.split())
    assert before <= start <= end <= after
    assert monitor.window(start, end)["samples"] >= 1


def test_joules_per_token_divides_window_energy() -> None:
    assert joules_per_token({"gpu_energy_j": 50.0}, 100) == 0.5
    assert joules_per_token({"gpu_energy_j": None}, 100) is None
    assert joules_per_token({"gpu_energy_j": 50.0}, 0) is None
